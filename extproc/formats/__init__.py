"""Wire formats by name. Each module follows the contract in `base.py`."""

from __future__ import annotations

from types import ModuleType

from extproc.formats import anthropic, gemini, openai

FORMATS: dict[str, ModuleType] = {"openai": openai, "anthropic": anthropic, "gemini": gemini}

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_SSE = "text/event-stream; charset=utf-8"


def stream_content_type(fmt: str, sse: bool) -> str:
    if fmt == "gemini":
        return "text/event-stream" if sse else "application/json; charset=UTF-8"
    return CONTENT_TYPE_SSE


def make_encoder(fmt: str, request: object, sse: bool = True) -> object:
    """A stream encoder of the client's format (Gemini may answer a JSON array instead of SSE)."""
    module = FORMATS[fmt]
    if fmt == "gemini":
        return module.StreamEncoder(request, sse=sse)
    return module.StreamEncoder(request)
