"""Spend: model prices and what each request costs."""
