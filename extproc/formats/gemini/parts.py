"""Parts the gateway writes (to clients and to Gemini): function calls, thoughts,
and the thoughtSignature check."""

from __future__ import annotations

import re
from typing import Any

from extproc.formats.canonical import ToolCall
from extproc.formats.gemini.common import args_object

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def signature_ok(signature: str | None) -> bool:
    """thoughtSignature is a bytes field: google-genai rejects the whole response
    (and Gemini the request) when it is not base64, e.g. a foreign signature."""
    return (
        signature is not None
        and signature != ""
        and _BASE64.fullmatch(signature) is not None
        and len(signature.rstrip("=")) % 4 != 1
    )


def call_part(call: ToolCall) -> dict:
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args_object(call.arguments), "id": call.id}}
    if signature_ok(call.signature):
        part["thoughtSignature"] = call.signature
    return part


def thought_part(text: str, signature: str | None) -> dict:
    part: dict[str, Any] = {"text": text, "thought": True}
    if signature_ok(signature):
        part["thoughtSignature"] = signature
    return part
