"""The one check every client-given model name passes where a parser reads it.

A model name ends up in provider paths (Gemini `/v1beta/models/{model}:...`, Azure
`/openai/deployments/{model}/...`), in headers and in logs. Paths also percent-encode
it (`extproc.providers.upstream_path`); this check keeps names to what real models
use, so nothing like `../../v1/files`, `a?key=x` or a control character gets that far.
"""

from __future__ import annotations

import re

from extproc.formats.client_errors import invalid

MAX_MODEL_LENGTH = 256
_ECHO = 64  # at most this much of a bad name goes back into the error message

# letters, digits and -._:/@+ ; first a letter or digit (ft:gpt-4o:org::id, llama3:8b, claude@2024, a/b)
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-._:/@+]*")
_RULE = (
    f"model names are letters, digits and -._:/@+ only, start with a letter or digit,"
    f" have at most {MAX_MODEL_LENGTH} characters and no '.' or '..' path segment"
)


def check_model(model: str) -> str:
    """`model` itself when it follows the rule; else GatewayError invalid_request (param "model")."""
    if len(model) <= MAX_MODEL_LENGTH and _MODEL.fullmatch(model) and not _dot_segment(model):
        return model
    shown = model[:_ECHO] + ("..." if len(model) > _ECHO else "")
    raise invalid(f"invalid model {shown!r}: {_RULE}", "model")


def _dot_segment(model: str) -> bool:
    if "." not in model:  # the common case costs one scan
        return False
    return any(segment in (".", "..") for segment in model.split("/"))
