"""Fake Anthropic Messages API server."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from tests.fakes.base import JSON, SSE_UTF8, FakeProvider, RecordedRequest, Reply, dumps, json_reply, stable_id
from tests.fakes.plans import Plan, ToolSpec, make_plan, split_fragments, text_of


def anthropic_error(status: int, type_: str, message: str, request_id: str) -> Reply:
    body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
    return json_reply(body, status, JSON, {"request-id": request_id})


class FakeAnthropic(FakeProvider):
    """``POST /v1/messages`` (``x-api-key`` or ``Authorization: Bearer``, plus
    ``anthropic-version``), ``POST /v1/messages/count_tokens``, ``GET /v1/models``."""

    name = "anthropic"
    default_api_key = "sk-ant-test"
    default_models = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6")

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        """Every real answer carries a ``request-id`` header; for a recorded
        error body use the id it contains."""
        if "request-id" in {key.lower() for key in reply.headers}:
            return reply
        request_id = self._body_request_id(reply.body) or self._request_id(request)
        return dataclasses.replace(reply, headers={"request-id": request_id, **reply.headers})

    @staticmethod
    def _body_request_id(body: bytes) -> str | None:
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return None
        value = parsed.get("request_id") if isinstance(parsed, dict) else None
        return value if isinstance(value, str) else None

    @staticmethod
    def _request_id(request: RecordedRequest) -> str:
        return "req_011C" + stable_id(request.body + request.path.encode(), 20)

    def answer(self, request: RecordedRequest) -> Reply:
        request_id = self._request_id(request)
        if (error := self._check_auth(request, request_id)) is not None:
            return error
        route = (request.method, request.path)
        if route == ("GET", "/v1/models"):
            return json_reply(self._model_list())
        if route not in {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens")}:
            return anthropic_error(404, "not_found_error", "Not Found", request_id)
        if not request.headers.get("anthropic-version"):
            return anthropic_error(400, "invalid_request_error", "anthropic-version: header is required", request_id)
        body = request.json
        if not isinstance(body, dict):
            return anthropic_error(
                400, "invalid_request_error", "There was an issue with the JSON body of your request.", request_id
            )
        if (error := self._validate(body, request.path, request_id)) is not None:
            return error
        plan = self._plan(body)
        if request.path.endswith("/count_tokens"):
            return json_reply({"input_tokens": plan.prompt_tokens})
        message_id = "msg_01" + stable_id(request.body, 22)
        if body.get("stream"):
            return Reply(content_type=SSE_UTF8, chunks=self._stream_frames(plan, body["model"], message_id))
        return json_reply(self._message(plan, body["model"], message_id))

    def _check_auth(self, request: RecordedRequest, request_id: str) -> Reply | None:
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("x-api-key") or (auth[7:].strip() if auth.startswith("Bearer ") else "")
        if not key:
            return anthropic_error(401, "authentication_error", "x-api-key header is required", request_id)
        if key != self.api_key:
            return anthropic_error(401, "authentication_error", "invalid x-api-key", request_id)
        return None

    def _validate(self, body: dict[str, Any], path: str, request_id: str) -> Reply | None:
        required = ["model", "messages"] if path.endswith("/count_tokens") else ["max_tokens", "messages", "model"]
        for name in required:
            if body.get(name) in (None, []):
                return anthropic_error(400, "invalid_request_error", f"{name}: Field required", request_id)
        if not self.known_model(str(body["model"])):
            return anthropic_error(404, "not_found_error", f"model: {body['model']}", request_id)
        return None

    def _plan(self, body: dict[str, Any]) -> Plan:
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        last = messages[-1] if messages else {}
        prompt = " ".join([text_of(body.get("system"))] + [text_of(m.get("content")) for m in messages])
        if self.script is not None:
            return self.script.plan(
                offered=[t["name"] for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t],
                tool_results=[
                    text_of(block.get("content"))
                    for message in messages
                    if isinstance(message.get("content"), list)
                    for block in message["content"]
                    if isinstance(block, dict) and block.get("type") == "tool_result"
                ],
                prompt_text=prompt,
                message_count=len(messages),
            )
        return make_plan(
            prefix="fake-anthropic",
            last_text=text_of(last.get("content")),
            prompt_text=prompt,
            message_count=len(messages),
            tool=self._tool_to_call(body, last),
            max_tokens=body.get("max_tokens"),
        )

    @staticmethod
    def _tool_to_call(body: dict[str, Any], last: dict[str, Any]) -> ToolSpec | None:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
        choice = body.get("tool_choice") or {}
        content = last.get("content")
        has_result = isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        )
        if not tools or last.get("role") != "user" or has_result or choice.get("type") == "none":
            return None
        wanted = choice.get("name") if choice.get("type") == "tool" else None
        chosen = next((t for t in tools if t.get("name") == wanted), tools[0])
        return ToolSpec(chosen["name"], chosen.get("input_schema"))

    @staticmethod
    def _stop_reason(plan: Plan) -> str:
        return {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}[plan.finish]

    @staticmethod
    def _tool_id(plan: Plan) -> str:
        return "toolu_01" + stable_id(f"{plan.tool.name if plan.tool else ''}{plan.arguments_json}", 22)

    def _content(self, plan: Plan) -> list[dict[str, Any]]:
        if plan.tool is None:
            return [{"type": "text", "text": plan.text}]
        return [{"type": "tool_use", "id": self._tool_id(plan), "name": plan.tool.name, "input": plan.arguments}]

    @staticmethod
    def _usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _message(self, plan: Plan, model: str, message_id: str) -> dict[str, Any]:
        return {
            "model": model,
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": self._content(plan),
            "stop_reason": self._stop_reason(plan),
            "stop_sequence": None,
            "usage": self._usage(plan, plan.completion_tokens),
        }

    def _stream_frames(self, plan: Plan, model: str, message_id: str) -> list[bytes]:
        def event(obj: dict[str, Any]) -> bytes:
            return b"event: " + obj["type"].encode() + b"\ndata: " + dumps(obj) + b"\n\n"

        start = self._message(plan, model, message_id)
        start.update(content=[], stop_reason=None, usage=self._usage(plan, 1))
        frames = [event({"type": "message_start", "message": start})]
        if plan.tool is None:
            block: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in plan.pieces]
        else:
            block = {"type": "tool_use", "id": self._tool_id(plan), "name": plan.tool.name, "input": {}}
            # The real API's first input_json_delta is an empty string.
            fragments = ["", *split_fragments(plan.arguments_json)]
            deltas = [{"type": "input_json_delta", "partial_json": fragment} for fragment in fragments]
        frames.append(event({"type": "content_block_start", "index": 0, "content_block": block}))
        frames.append(b'event: ping\ndata: {"type": "ping"}\n\n')  # spelled like the real API
        frames += [event({"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
        frames.append(event({"type": "content_block_stop", "index": 0}))
        usage = {
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": plan.completion_tokens,
        }
        stop = {"stop_reason": self._stop_reason(plan), "stop_sequence": None}
        frames.append(event({"type": "message_delta", "delta": stop, "usage": usage}))
        frames.append(event({"type": "message_stop"}))
        return frames

    def _model_list(self) -> dict[str, Any]:
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m.replace("-", " ").title(),
                "created_at": "2025-09-29T00:00:00Z",
            }
            for m in self.listed_models()
        ]
        first = data[0]["id"] if data else None
        last = data[-1]["id"] if data else None
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}
