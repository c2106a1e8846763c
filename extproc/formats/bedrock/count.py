"""Provider side, Bedrock's CountTokens (`POST /model/{id}/count-tokens`): a prompt as the Converse or
InvokeModel request it would be, wrapped in the operation's `input`, and its `{"inputTokens": N}`.

`input.converse` takes Converse's messages, system, toolConfig and additionalModelRequestFields;
`input.invokeModel.body` is the InvokeModel body, a blob (base64 in the JSON, as botocore sends it).
"""

from __future__ import annotations

import base64

import orjson

from extproc.formats.answer_values import answer_object, count, provider_error
from extproc.formats.anthropic.common import dumps_lenient
from extproc.formats.bedrock import converse_request, invoke
from extproc.formats.canonical import ChatRequest
from extproc.formats.input_bounds import dumps_request
from extproc.formats.json_fields import is_int
from extproc.formats.render_options import RenderedRequest, RenderOptions

_CONVERSE_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")
# InvokeModel requires max_tokens, which a count request has no use for: a placeholder that counts
# nothing, above any thinking budget (Claude refuses a budget not below max_tokens)
_PLACEHOLDER_MAX_TOKENS = 1024


def converse_count_request(request: ChatRequest, options: RenderOptions) -> RenderedRequest:
    body, dropped = converse_request.request_body(request, options)
    counted = {key: body[key] for key in _CONVERSE_FIELDS if key in body}
    return RenderedRequest(dumps_lenient({"input": {"converse": counted}}), dropped)


def invoke_count_request(request: ChatRequest, options: RenderOptions) -> RenderedRequest:
    rendered = invoke.render_request(request, options)
    return RenderedRequest(_invoke_input(rendered.body), rendered.dropped)


def own_count_body(body: bytes, betas: tuple[str, ...]) -> bytes:
    """An Anthropic client's own count_tokens body, as the InvokeModel body Claude would get for it."""
    data = invoke.passthrough_fields(body, betas)
    thinking = data.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    floor = budget + 1 if is_int(budget) else 0
    data.setdefault("max_tokens", max(_PLACEHOLDER_MAX_TOKENS, floor))
    return _invoke_input(dumps_request(data))


def _invoke_input(invoke_body: bytes) -> bytes:
    return orjson.dumps({"input": {"invokeModel": {"body": base64.b64encode(invoke_body).decode()}}})


def parse_count(body: bytes) -> int:
    """CountTokens' answer -> the prompt's tokens."""
    data = answer_object(body)
    if "inputTokens" not in data:
        raise provider_error("the provider's answer has no token count")
    return count(data, "inputTokens")
