"""Stage: which client API a request speaks (from method, path and headers), and what a
client may never send: internal `x-gw-*` headers, `x-envoy-*` headers that steer Envoy
(retries, timeouts), or more headers than the gateway takes (a 431 in its format)."""

from __future__ import annotations

from urllib.parse import parse_qs

from extproc.contract import HEADER_BYTES_LIMIT, HEADER_COUNT_LIMIT, INTERNAL_PREFIX
from extproc.errors import GatewayError
from extproc.formats.endpoint import Endpoint, Format
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage

FORBIDDEN_PREFIXES = (INTERNAL_PREFIX, "x-envoy-")

OPENAI_CHAT = Endpoint("openai", "chat")
OPENAI_EMBEDDINGS = Endpoint("openai", "embeddings")
OPENAI_MODELS = Endpoint("openai", "models")
RESPONSES_CREATE = Endpoint("responses", "chat")
RESPONSES_COUNT = Endpoint("responses", "count_tokens")
ANTHROPIC_CHAT = Endpoint("anthropic", "chat")
ANTHROPIC_COUNT = Endpoint("anthropic", "count_tokens")
ANTHROPIC_MODELS = Endpoint("anthropic", "models")
GEMINI_MODELS = Endpoint("gemini", "models")

_POST_ROUTES = {
    "/v1/chat/completions": OPENAI_CHAT,
    "/v1/messages": ANTHROPIC_CHAT,
    "/v1/messages/count_tokens": ANTHROPIC_COUNT,
    "/v1/embeddings": OPENAI_EMBEDDINGS,
    "/v1/responses": RESPONSES_CREATE,
    "/v1/responses/input_tokens": RESPONSES_COUNT,
}
RESPONSES_PREFIX = "/v1/responses"
# Gemini method -> (operation, stream, batch)
_GEMINI_METHODS = {
    "generateContent": ("chat", False, False),
    "streamGenerateContent": ("chat", True, False),
    "embedContent": ("embeddings", False, False),
    "batchEmbedContents": ("embeddings", False, True),
}


def classify(method: str, path: str, headers: dict[str, str]) -> Endpoint | None:
    """None when the gateway does not serve this path."""
    route, _, query = path.partition("?")
    route = route.rstrip("/")
    if method == "POST":
        if (endpoint := _POST_ROUTES.get(route)) is not None:
            return endpoint
        for prefix in ("/v1beta/models/", "/v1/models/"):
            if route.startswith(prefix):
                model, _, gemini_method = route[len(prefix) :].rpartition(":")
                if model and gemini_method in _GEMINI_METHODS:
                    operation, stream, batch = _GEMINI_METHODS[gemini_method]
                    sse = "sse" in parse_qs(query).get("alt", []) if stream else True
                    return Endpoint("gemini", operation, model, stream, sse, batch)  # type: ignore[arg-type]
        return None
    if method == "GET":
        if route == "/v1beta/models" or (route == "/v1/models" and _speaks_gemini(query, headers)):
            return GEMINI_MODELS
        if route == "/v1/models":
            return ANTHROPIC_MODELS if "anthropic-version" in headers else OPENAI_MODELS
    return None


def _speaks_gemini(query: str, headers: dict[str, str]) -> bool:
    """Gemini shares `/v1/models` with OpenAI; its clients send their key their own way."""
    return "x-goog-api-key" in headers or "key" in parse_qs(query)


def _stored_response(method: str, route: str) -> bool:
    """GET or DELETE /v1/responses/{id} (and its input_items), POST /v1/responses/{id}/cancel."""
    if not route.startswith(RESPONSES_PREFIX + "/"):
        return False
    return method in ("GET", "DELETE") or route.endswith("/cancel")


def guess_format(path: str, headers: dict[str, str]) -> Format:
    """The error format for a request we cannot classify."""
    if path.startswith(RESPONSES_PREFIX):
        return "responses"
    if path.startswith("/v1beta") or "x-goog-api-key" in headers:
        return "gemini"
    if "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai"


class EndpointStage(Stage):
    name = "endpoint"

    async def request_headers(self, ex: Exchange, reply: PhaseReply, end_of_stream: bool) -> LocalAnswer | None:
        headers = ex.headers
        ex.client_address = headers.get("x-envoy-external-address", "")
        ex.endpoint = endpoint = classify(headers.get(":method", ""), ex.path, headers)
        ex.error_format = endpoint.format if endpoint else guess_format(ex.path, headers)
        if ex.header_bytes > HEADER_BYTES_LIMIT or len(headers) > HEADER_COUNT_LIMIT:
            raise GatewayError(
                "headers_too_large",
                f"the request headers are too large: at most {HEADER_BYTES_LIMIT // 1024} KiB "
                f"in at most {HEADER_COUNT_LIMIT} headers",
            )
        if endpoint is None:
            route = ex.path.partition("?")[0]
            if _stored_response(headers.get(":method", ""), route):
                raise GatewayError(
                    "not_found",
                    "the gateway does not store responses: send the whole conversation in `input` with each "
                    "request, with store: false",
                    code="response_not_stored",
                )
            raise GatewayError("not_found", f"unknown path {route}")
        reply.remove_headers += [name for name in headers if name.startswith(FORBIDDEN_PREFIXES)]
        if endpoint.operation != "models" and end_of_stream:
            raise GatewayError("invalid_request", "a JSON request body is required")
        return None
