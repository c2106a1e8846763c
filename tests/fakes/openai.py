"""Fake OpenAI (and Azure OpenAI) server."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from tests.fakes import openai_responses
from tests.fakes.base import (
    CREATED,
    JSON,
    JSON_UTF8,
    SSE_UTF8,
    FakeProvider,
    RecordedRequest,
    Reply,
    dumps,
    json_reply,
    mask_key,
    stable_id,
)
from tests.fakes.plans import (
    Plan,
    ToolSpec,
    count_tokens,
    fake_vector,
    make_plan,
    split_fragments,
    text_of,
    vector_base64,
)

_AZURE_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|embeddings)$")
_AZURE_RESPONSES = ("/openai/responses", "/openai/responses/input_tokens")
# Azure's v1 API: OpenAI's paths under /openai/v1, the deployment in the body, no dated api-version
_AZURE_V1 = "/openai/v1/"
_RESPONSES = ("/v1/responses", "/v1/responses/input_tokens")

_OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the basic auth username:password "
    "pair (i.e. username: YOUR_KEY, password: empty). You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
_AZURE_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)
_AZURE_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)


def chat_completion(text: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A scripted Chat Completions answer: `text`, stop, one token each way."""
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def openai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Reply:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_reply(body, status, JSON_UTF8)


def azure_error(status: int, code: str, message: str) -> Reply:
    return json_reply({"error": {"code": code, "message": message}}, status, JSON)


class FakeOpenAI(FakeProvider):
    """``POST /v1/chat/completions``, ``POST /v1/responses`` (and ``input_tokens``),
    ``POST /v1/embeddings``, ``GET /v1/models`` (Bearer auth) and the Azure paths
    ``/openai/deployments/{d}/...`` and ``/openai/responses`` (``api-key`` header,
    ``api-version`` query)."""

    name = "openai"
    default_api_key = "sk-test-openai"
    default_models = ("gpt-4o-mini", "gpt-5-nano", "text-embedding-3-small")
    embedding_dimensions = 1536

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        if "x-request-id" in {key.lower() for key in reply.headers}:
            return reply
        request_id = "req_" + stable_id(request.body + request.path.encode(), 32).lower()
        return dataclasses.replace(reply, headers={"x-request-id": request_id, **reply.headers})

    def answer(self, request: RecordedRequest) -> Reply:
        azure = _AZURE_PATH.match(request.path)
        if azure:
            return self._azure(request, azure["deployment"], azure["op"])
        if request.path in _AZURE_RESPONSES:
            return self._azure_responses(request)
        if request.path.startswith(_AZURE_V1):
            return self._azure_v1(request)
        if (error := self._check_bearer(request)) is not None:
            return error
        route = (request.method, request.path)
        if route == ("POST", "/v1/chat/completions"):
            return self._chat(request, None)
        if request.method == "POST" and request.path in _RESPONSES:
            return self._responses(request)
        if route == ("POST", "/v1/embeddings"):
            return self._embeddings(request, None)
        if route == ("GET", "/v1/models"):
            return json_reply({"object": "list", "data": [self._model(m) for m in self.listed_models()]})
        if request.method == "GET" and request.path.startswith("/v1/models/"):
            return self._get_model(request.path.removeprefix("/v1/models/"))
        return openai_error(404, f"Invalid URL ({request.method} {request.path})")

    # -- auth and validation -----------------------------------------------

    def _check_bearer(self, request: RecordedRequest) -> Reply | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return openai_error(401, _OPENAI_NO_KEY)
        key = auth[7:].strip()
        if key != self.api_key:
            message = (
                f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            return openai_error(401, message, code="invalid_api_key")
        return None

    def _azure(self, request: RecordedRequest, deployment: str, op: str) -> Reply:
        if "api-version" not in request.query:
            return azure_error(404, "404", "Resource not found")
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("api-key") or (auth[7:].strip() if auth.startswith("Bearer ") else "")
        if key != self.api_key:
            return azure_error(401, "401", _AZURE_BAD_KEY)
        if not self.known_model(deployment):
            return azure_error(404, "DeploymentNotFound", _AZURE_NO_DEPLOYMENT)
        if request.method != "POST":
            return azure_error(404, "404", "Resource not found")
        if op == "embeddings":
            return self._embeddings(request, deployment)
        return self._chat(request, deployment)

    def _azure_responses(self, request: RecordedRequest) -> Reply:
        if "api-version" not in request.query:
            return azure_error(404, "404", "Resource not found")
        if request.headers.get("api-key") != self.api_key:
            return azure_error(401, "401", _AZURE_BAD_KEY)
        return self._responses(request, azure=True)

    def _azure_v1(self, request: RecordedRequest) -> Reply:
        """Azure's v1 API takes no dated api-version (`preview` aside) and either key header."""
        if request.query.get("api-version", "preview") != "preview":
            return azure_error(400, "BadRequest", "API version not supported")
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("api-key") or (auth[7:].strip() if auth.startswith("Bearer ") else "")
        if key != self.api_key:
            return azure_error(401, "401", _AZURE_BAD_KEY)
        path = "/v1/" + request.path.removeprefix(_AZURE_V1)
        if request.method == "POST" and path in _RESPONSES:
            return self._responses(request, azure=True)
        if request.method == "POST" and path == "/v1/chat/completions":
            return self._chat(request, None)
        return azure_error(404, "404", "Resource not found")

    # -- responses ---------------------------------------------------------

    def _responses(self, request: RecordedRequest, azure: bool = False) -> Reply:
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        refused = openai_responses.check(body)
        if refused is not None:
            message, param = refused
            code = "missing_required_parameter" if message.startswith("Missing") else None
            return openai_error(400, message, param=param, code=code)
        model = body["model"]
        if not azure and not self.known_model(model):
            return openai_error(
                400, f"The requested model '{model}' does not exist.", param="model", code="model_not_found"
            )
        return openai_responses.answer(request, body, model, self.script)

    def _body(self, request: RecordedRequest) -> dict[str, Any] | Reply:
        if not isinstance(request.json, dict):
            return openai_error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.",
            )
        return request.json

    # -- chat completions --------------------------------------------------

    def _chat(self, request: RecordedRequest, deployment: str | None) -> Reply:
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        model = body.get("model") or deployment
        if not model:
            return openai_error(400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return openai_error(
                400, "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
            )
        if deployment is None and not self.known_model(model):
            return openai_error(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        plan = self._plan(body, messages)
        completion_id = "chatcmpl-" + stable_id(request.body, 29)
        azure = deployment is not None
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = self._stream_frames(plan, model, completion_id, include_usage, azure)
            return Reply(content_type=SSE_UTF8, chunks=frames)
        return json_reply(self._completion(plan, model, completion_id, azure))

    def _plan(self, body: dict[str, Any], messages: list[Any]) -> Plan:
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        if self.script is not None:
            turns = [m for m in messages if isinstance(m, dict)]
            return self.script.plan(
                offered=[
                    (t.get("function") or {}).get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)
                ],
                tool_results=[text_of(m.get("content")) for m in turns if m.get("role") == "tool"],
                prompt_text=" ".join(text_of(m.get("content")) for m in turns),
                message_count=len(turns),
            )
        return make_plan(
            prefix="fake-openai",
            last_text=text_of(last.get("content")),
            prompt_text=" ".join(text_of(m.get("content")) for m in messages if isinstance(m, dict)),
            message_count=len(messages),
            tool=self._tool_to_call(body, last),
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        )

    @staticmethod
    def _tool_to_call(body: dict[str, Any], last: dict[str, Any]) -> ToolSpec | None:
        tools = [t.get("function") or {} for t in body.get("tools") or [] if isinstance(t, dict)]
        choice = body.get("tool_choice")
        if not tools or last.get("role") != "user" or choice == "none":
            return None
        wanted = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        chosen = next((t for t in tools if t.get("name") == wanted), tools[0])
        return ToolSpec(chosen.get("name", "tool"), chosen.get("parameters"))

    @staticmethod
    def _usage(plan: Plan) -> dict[str, Any]:
        return {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish_reason(plan: Plan) -> str:
        return {"stop": "stop", "length": "length", "tool": "tool_calls"}[plan.finish]

    @staticmethod
    def _call_id(plan: Plan) -> str:
        return "call_" + stable_id(f"{plan.tool.name if plan.tool else ''}{plan.arguments_json}", 24)

    def _completion(self, plan: Plan, model: str, completion_id: str, azure: bool) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text if plan.tool is None else None,
            "refusal": None,
            "annotations": [],
        }
        if plan.tool is not None:
            function = {"name": plan.tool.name, "arguments": plan.arguments_json}
            message["tool_calls"] = [{"id": self._call_id(plan), "type": "function", "function": function}]
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self._finish_reason(plan)}
        completion: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [choice],
            "usage": self._usage(plan),
            "service_tier": "default",
            "system_fingerprint": None,
        }
        if azure:  # Azure adds content-filter verdicts to every answer
            choice["content_filter_results"] = _AZURE_FILTERS
            completion["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _AZURE_FILTERS}]
        return completion

    def _stream_frames(
        self, plan: Plan, model: str, completion_id: str, include_usage: bool, azure: bool
    ) -> list[bytes]:
        def chunk(choices: list[Any], usage: Any = None) -> bytes:
            obj: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": None,
                "choices": choices,
            }
            if include_usage:  # real chunks carry "usage": null only when asked for usage
                obj["usage"] = usage
            # Real chunks pad themselves with random characters; ours are fixed.
            obj["obfuscation"] = stable_id(repr(choices), 1 + len(repr(choices)) % 14)
            return b"data: " + dumps(obj) + b"\n\n"

        def delta(content: dict[str, Any], finish: str | None = None) -> list[Any]:
            return [{"index": 0, "delta": content, "finish_reason": finish}]

        frames = []
        if azure:  # Azure's first chunk: prompt filter results and no choices
            first = {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _AZURE_FILTERS}],
            }
            frames.append(b"data: " + dumps(first) + b"\n\n")
        if plan.tool is None:
            frames.append(chunk(delta({"role": "assistant", "content": "", "refusal": None})))
            frames += [chunk(delta({"content": piece})) for piece in plan.pieces]
        else:
            call = {
                "index": 0,
                "id": self._call_id(plan),
                "type": "function",
                "function": {"name": plan.tool.name, "arguments": ""},
            }
            frames.append(chunk(delta({"role": "assistant", "content": None, "tool_calls": [call], "refusal": None})))
            for fragment in split_fragments(plan.arguments_json):
                frames.append(chunk(delta({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})))
        frames.append(chunk(delta({}, self._finish_reason(plan))))
        if include_usage:
            frames.append(chunk([], self._usage(plan)))
        frames.append(b"data: [DONE]\n\n")
        return frames

    # -- embeddings and models ---------------------------------------------

    def _embeddings(self, request: RecordedRequest, deployment: str | None) -> Reply:
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        model = body.get("model") or deployment
        if not model:
            return openai_error(400, "you must provide a model parameter")
        inputs = self._embedding_inputs(body.get("input"))
        if not inputs:
            return openai_error(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            )
        if deployment is None and not self.known_model(model):
            return openai_error(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        dimensions = int(body.get("dimensions") or self.embedding_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = fake_vector(text, dimensions)
            data.append(
                {"object": "embedding", "index": index, "embedding": vector_base64(vector) if as_base64 else vector}
            )
        tokens = sum(count_tokens(text) for text in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_reply({"object": "list", "data": data, "model": model, "usage": usage})

    @staticmethod
    def _embedding_inputs(raw: Any) -> list[str]:
        if isinstance(raw, str):
            return [raw]
        if not isinstance(raw, list) or not raw:
            return []
        if all(isinstance(item, int) for item in raw):  # one pre-tokenized input
            return [" ".join(map(str, raw))]
        return [item if isinstance(item, str) else " ".join(map(str, item)) for item in raw]

    @staticmethod
    def _model(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "system"}

    def _get_model(self, model_id: str) -> Reply:
        if not self.known_model(model_id):
            return openai_error(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        return json_reply(self._model(model_id))


_AZURE_FILTERS = {
    category: {"filtered": False, "severity": "safe"} for category in ("hate", "self_harm", "sexual", "violence")
}
