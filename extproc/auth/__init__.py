"""Client authentication: a request's credential (API key or JWT) -> a client identity.

Submodules are imported directly: extproc.config imports the settings before
prometheus_client may be imported, so this package must not pull in the
modules that count metrics.
"""
