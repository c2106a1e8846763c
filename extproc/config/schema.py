"""JSON Schema of gateway.yaml, generated from the declarations of the typed config (extproc.declare):
the one description of what the file may hold.

Used to validate (every error at once, with its path) and printed by `extproc schema` for editors.
"""

from __future__ import annotations

from typing import Any

from extproc.config.model import MAX_STREAM_LINE_BYTES, GatewayConfig
from extproc.declare import json_schema
from extproc.provider_kinds import KIND_NAMES

__all__ = ["GATEWAY_SCHEMA", "MAX_STREAM_LINE_BYTES", "PROVIDER_KINDS"]

PROVIDER_KINDS = list(KIND_NAMES)

GATEWAY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **json_schema(GatewayConfig),
}
