"""Gemini generateContent (Developer API, v1beta and v1) <-> the canonical model.

Client side: the API a google-genai caller speaks. Provider side: the API the
gateway speaks to generativelanguage.googleapis.com. See /work/shared/mapping.md.

Documented choices (the places where the formats do not line up one to one):

* Every request field is accepted in camelCase and snake_case, at every level.
* `safetySettings`, `responseModalities: ["TEXT"]`, `thinkingConfig.includeThoughts`,
  logprobs settings, `labels` and other tuning knobs are accepted and ignored
  (the canonical model has no place for them). Things whose loss would change
  the answer (`cachedContent`, non-function tools such as googleSearch,
  non-text modalities, other response MIME types, code execution parts) are
  rejected with invalid_request.
* functionResponse.response <-> tool message text: `{"output": s}` becomes the
  text `s` and `{"error": s}` the text `s` with `is_error`, unless `s` is itself
  JSON object text; any other object becomes its compact JSON text. Rendering
  does the reverse: JSON object text is sent as that object (under "error"
  when is_error), any other text as `{"output": text}` / `{"error": text}`.
  The round trip is exact.
* A functionResponse without an id answers the earliest unanswered call with
  that name (FIFO, so parallel calls of one function pair up in order); if none
  is open a fresh `call_...` id is generated.
* `thinkingBudget: -1` (dynamic) is the provider default and maps to None;
  `thinkingLevel` maps to reasoning_effort. Rendering sends reasoning_effort as
  thinkingBudget: none 0, minimal 128, low 1024, medium 8192, high/xhigh 24576.
* thoughtSignature on a functionCall is kept in ToolCall.signature. Stream
  events have no such field, so the decoder emits a signature-only
  ThinkingDelta right after the call's ToolCallStart/ToolCallDelta, and the
  encoder attaches a signature-only ThinkingDelta to the item just before it
  (the buffered call, or the thought part). Signatures on plain text parts are
  dropped (Gemini only requires the function-call ones).
* Gemini always reports usage: parse_request sets include_usage, and the
  stream encoder always writes usageMetadata once it is known.
"""

from __future__ import annotations

from extproc.formats.gemini.answers import parse_error, parse_response
from extproc.formats.gemini.decoder import StreamDecoder
from extproc.formats.gemini.embeddings import (
    parse_embedding_request,
    parse_embedding_response,
    render_embedding_request,
    render_embedding_response,
)
from extproc.formats.gemini.encoder import StreamEncoder
from extproc.formats.gemini.request import parse_request
from extproc.formats.gemini.response import render_error, render_models, render_response
from extproc.formats.gemini.upstream import render_request

__all__ = [
    "StreamDecoder",
    "StreamEncoder",
    "parse_embedding_request",
    "parse_embedding_response",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_embedding_request",
    "render_embedding_response",
    "render_error",
    "render_models",
    "render_request",
    "render_response",
]
