"""Reasoning a Responses client carries from one turn to the next.

A Responses client keeps a reasoning item's `encrypted_content` and sends it back with the
conversation (Codex asks for it with `include: ["reasoning.encrypted_content"]`; with
`store: false` it is the only way reasoning survives a turn). OpenAI's is opaque. Anthropic
and Gemini need their own thinking back too, with its signature (Anthropic refuses a tool
round trip under thinking without it; Gemini 3 a function call without its thoughtSignature),
so a reasoning item the gateway makes from their thinking carries the thinking itself in
`encrypted_content`, written in the gateway's own form: `gw1:` and the base64url JSON
`[text, signature, redacted]`. Nothing secret is in it, and a forged one only reaches the
provider that checks the signature.
"""

from __future__ import annotations

import base64
import binascii

import orjson

from extproc.formats.canonical import ThinkingPart

PREFIX = "gw1:"


def encode(part: ThinkingPart) -> str | None:
    """The `encrypted_content` of a reasoning item made from `part`: OpenAI's own as it came,
    the gateway's for signed thinking, None for thinking with nothing to verify it by."""
    if part.encrypted is not None:
        return part.encrypted
    if part.signature is None:
        return None
    data = orjson.dumps([part.text, part.signature, part.redacted])
    return PREFIX + base64.urlsafe_b64encode(data).decode()


def decode(content: str) -> ThinkingPart | None:
    """The thinking in a gateway-written `encrypted_content`; None for anything else (OpenAI's)."""
    if not content.startswith(PREFIX):
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(content[len(PREFIX) :]))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not isinstance(value[0], str)
        or not isinstance(value[1], str)
        or not isinstance(value[2], bool)
    ):
        return None
    return ThinkingPart(value[0], value[1], value[2])
