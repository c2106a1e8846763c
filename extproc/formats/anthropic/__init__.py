"""Anthropic Messages API (`POST /v1/messages`) <-> canonical model.

Client side: what the official `anthropic` SDK sends and expects back
(message objects, the `event:`-framed stream, error bodies, `/v1/models`).
Provider side: requests to api.anthropic.com and decoding of its answers.

Choices made here:
- Canonical `input_tokens` includes cached tokens; Anthropic's `input_tokens`
  does not, so the cache read/creation counts are added when parsing and
  subtracted when rendering.
- Client side, anything the canonical model cannot carry is refused with a
  400 naming the field (server tools, document blocks, file image sources)
  rather than silently changing the request; `cache_control` is ignored.
- `thinking.type == "adaptive"` becomes `reasoning_effort` (the
  `output_config.effort`, default "high" like the API); "disabled" is the
  default and maps to nothing. `output_config.format` (structured outputs)
  is the canonical json_schema response format, both ways.
- Provider side, OpenAI's temperature range 0-2 is clamped to Anthropic's
  0-1 (not scaled: 0.7 means the same on both). With thinking on, the API
  refuses temperature/top_k (dropped and reported) and top_p < 0.95
  (clamped), and forced tool use (thinking is then dropped and reported).
- `reasoning_effort` -> thinking budget: see `upstream.EFFORT_BUDGETS`; "minimal" and
  "none" leave thinking off. A budget that does not fit under max_tokens
  raises max_tokens when the client gave none, else is lowered to
  max_tokens - 1 (or dropped when that is under the 1024 minimum).
- `response_format: json_object` has no schema-free equivalent: unsupported.
- A canonical "error" finish reason has no Anthropic value: sent as end_turn.
- Which stop sequence ended a turn is not in the canonical model: a stream or
  response rendered here says `end_turn` with `stop_sequence: null`.

Modules: `request` (parse_request), `response` (render_response, render_error,
render_models), `encoder` (StreamEncoder), `upstream` (render_request),
`answers` (parse_response, parse_error), `decoder` (StreamDecoder), and
`common` (ids, JSON output and the tables both sides use).
"""

from __future__ import annotations

from extproc.formats.anthropic.answers import parse_error, parse_response
from extproc.formats.anthropic.decoder import StreamDecoder
from extproc.formats.anthropic.encoder import StreamEncoder
from extproc.formats.anthropic.request import parse_request
from extproc.formats.anthropic.response import render_error, render_models, render_response
from extproc.formats.anthropic.upstream import render_request

__all__ = [
    "StreamDecoder",
    "StreamEncoder",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_error",
    "render_models",
    "render_request",
    "render_response",
]
