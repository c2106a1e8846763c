"""JSON Schema of a price table (gateway.yaml's `prices`, and default_prices.yaml's), for the
configuration's schema to include: the same shape `extproc.spend.prices.parse_prices` reads."""

from __future__ import annotations

from typing import Any

_usd = {"type": "number", "minimum": 0}
_RATES: dict[str, Any] = {
    "input": {**_usd, "description": "USD per million prompt tokens not read from or written to the cache"},
    "cached_input": {**_usd, "description": "USD per million prompt tokens read from the cache (default: input)"},
    "cache_write": {**_usd, "description": "USD per million prompt tokens written to the cache (default: input)"},
    "cache_write_1h": {
        **_usd,
        "description": "USD per million prompt tokens written to Anthropic's 1-hour cache (default: cache_write)",
    },
    "output": {**_usd, "description": "USD per million output tokens, reasoning included"},
    "reasoning": {**_usd, "description": "USD per million reasoning tokens, if billed apart (default: output)"},
}
PRICE_ENTRY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["models", "input", "output"],
    "properties": {
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
            "description": "model names or fnmatch globs (exact names are tried before globs)",
        },
        **_RATES,
        "above": {
            "type": "object",
            "additionalProperties": False,
            "required": ["prompt_tokens", "input", "output"],
            "properties": {
                "prompt_tokens": {"type": "integer", "minimum": 0},
                **_RATES,
            },
            "description": "the prices of the whole request when its prompt exceeds prompt_tokens",
        },
        "as_of": {"type": "string", "description": "the date of the figures"},
        "source": {"type": "string", "description": "where the figures are published"},
        "via": {"type": "string", "description": "the table they were taken from"},
    },
}
PRICES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": PRICE_ENTRY},
    "description": "USD prices per provider kind (openai, anthropic, gemini, bedrock, vertex, ...), "
    "searched before the default table: they override or extend it",
}
