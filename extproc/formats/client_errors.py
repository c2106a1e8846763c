"""Bad client input as the gateway's error: every refusal of a parser is one of these."""

from __future__ import annotations

from extproc.errors import GatewayError


def invalid(message: str, param: str | None = None) -> GatewayError:
    """Bad client input, naming the offending field."""
    return GatewayError("invalid_request", message, param=param)
