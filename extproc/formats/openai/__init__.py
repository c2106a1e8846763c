"""OpenAI Chat Completions (and Embeddings) <-> canonical model.

Client side: what the official `openai` SDK sends to `/v1/chat/completions`,
`/v1/embeddings`, `/v1/models`, and what it expects back, byte for byte.
Provider side: requests to api.openai.com (or an OpenAI-compatible server)
and decoding of its answers and streams.

Choices made here (see also the constants in `common.py`):
- Thinking/reasoning content has no field in the official Chat Completions
  response, so `render_response` and `StreamEncoder` drop it. Incoming
  `reasoning_content` / `reasoning` fields of OpenAI-compatible servers
  (vLLM, DeepSeek, OpenRouter) ARE decoded into canonical thinking.
- The canonical finish reason "error" has no OpenAI value: it is sent as "stop".
- A canonical `max_tokens` goes upstream as `max_completion_tokens`
  (`MAX_TOKENS_FIELD`); newer OpenAI models refuse `max_tokens`.
- Upstream requests keep the client's `stream_options.include_usage` and
  embedding `encoding_format` (canonical parsers of Anthropic/Gemini clients
  set include_usage): a same-format passthrough answer must be exactly what
  the client asked for (an unrequested `choices: []` usage chunk breaks
  `chunk.choices[0]` client code).
- Errors the provider raises against the gateway's own key (401/403) get a
  generic message: the provider's text may echo part of the operator's key.

Modules: `request` (parse_request), `response` (render_response, render_error,
render_models), `encoder` (StreamEncoder) for the client side; `upstream`
(render_request), `answers` (parse_response), `provider_errors` (parse_error),
`decoder` (StreamDecoder) for the provider side; `embeddings` for both;
`common` holds what they share; fields are read with `formats.json_fields`.
"""

from __future__ import annotations

from extproc.formats.openai.answers import parse_response
from extproc.formats.openai.decoder import StreamDecoder
from extproc.formats.openai.embeddings import (
    parse_embedding_request,
    parse_embedding_response,
    render_embedding_request,
    render_embedding_response,
)
from extproc.formats.openai.encoder import StreamEncoder
from extproc.formats.openai.provider_errors import parse_error
from extproc.formats.openai.request import parse_request
from extproc.formats.openai.response import render_error, render_models, render_response
from extproc.formats.openai.upstream import render_request

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
