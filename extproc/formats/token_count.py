"""Input token counts: Anthropic's `POST /v1/messages/count_tokens` and the Responses API's
`POST /v1/responses/input_tokens`, whichever provider serves them.

A provider of the client's own API (Anthropic; OpenAI's Responses API) counts the client's own
request (passed through, not read here). A Gemini
provider counts the request translated to generateContent, in `:countTokens`' generateContentRequest
form (the only one that takes the system instruction and tools; generation settings are not part
of it); its `totalTokens` is the answer. A Bedrock provider counts the request as Converse or
InvokeModel would get it, by CountTokens (`formats.bedrock.count`). Any other provider cannot
count: the gateway estimates, and says so in a header (`contract.TOKEN_COUNT_HEADER`).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from extproc.formats.answer_values import answer_object, count, provider_error
from extproc.formats.bedrock.count import converse_count_request, invoke_count_request, parse_count
from extproc.formats.canonical import ChatRequest
from extproc.formats.endpoint import Format
from extproc.formats.gemini import render_request as render_gemini
from extproc.formats.render_options import RenderedRequest, RenderOptions


def gemini_count_request(request: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """A countTokens body for `request`, rendered for Gemini as generateContent would get it: the
    Developer API's wraps it in `generateContentRequest` naming the model; Vertex AI's
    (`model_in_body` false: the path alone names it) takes its fields flat."""
    rendered = render_gemini(request, options)
    inner = orjson.loads(rendered.body)  # a count only: the chat path never reads its own output back
    inner.pop("generationConfig", None)  # refused by countTokens on the Developer API
    if not options.model_in_body:
        return RenderedRequest(orjson.dumps(inner), rendered.dropped)
    model = options.model if options.model.startswith("models/") else f"models/{options.model}"
    body = orjson.dumps({"generateContentRequest": {"model": model, **inner}})
    return RenderedRequest(body, rendered.dropped)


def parse_gemini_count(body: bytes) -> int:
    """countTokens' answer -> the prompt's tokens."""
    data = answer_object(body)
    if "totalTokens" not in data:
        raise provider_error("the provider's answer has no token count")
    return count(data, "totalTokens")


# Per provider API with a count operation: the count request for a canonical prompt, and the count
# read from its answer
COUNT_REQUESTS: dict[str, Callable[[ChatRequest, RenderOptions], RenderedRequest]] = {
    "gemini": gemini_count_request,
    "bedrock-converse": converse_count_request,
    "bedrock-invoke": invoke_count_request,
}
COUNT_ANSWERS: dict[str, Callable[[bytes], int]] = {
    "gemini": parse_gemini_count,
    "bedrock-converse": parse_count,
    "bedrock-invoke": parse_count,
}


def render_count(client: Format, tokens: int) -> bytes:
    """A count answer in the client's API: Anthropic's MessageTokensCount, or the Responses API's
    input token count (`response.input_tokens`)."""
    if client == "responses":
        return orjson.dumps({"object": "response.input_tokens", "input_tokens": max(tokens, 0)})
    return orjson.dumps({"input_tokens": max(tokens, 0)})
