"""The Responses API of the fake OpenAI server (``POST /v1/responses`` and
``/v1/responses/input_tokens``; Azure's ``/openai/responses``).

Shapes follow OpenAI's recordings in pydantic/pydantic-ai
``tests/models/cassettes/test_openai_responses/``: a plain answer as in
``test_openai_responses_model_simple_response_with_tool_call.yaml`` (a ``response``
object, output items ``message`` / ``function_call``, usage with input and output
details); a stream as in ``test_openai_responses_stream.yaml`` and
``test_openai_responses_thinking_part_iter.yaml`` (``event:`` and ``data:`` lines, a
``sequence_number`` on every event, deltas carrying ``obfuscation``, reasoning items with
``encrypted_content`` and summary parts); errors as in
``test_openai_responses_model_http_error.yaml``. Requests are checked the way the real
API refuses them: an unknown item type or role, a call output without its call id. With a
scripted tool round trip set on the fake (``fakes/script.py``) it answers as that script says,
calling the tool inside its namespace when the client offered it in one.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.base import CREATED, SSE_UTF8, RecordedRequest, Reply, dumps, json_reply, stable_id
from tests.fakes.plans import Plan, ToolSpec, make_plan, split_fragments, split_pieces, text_of
from tests.fakes.script import ToolRoundTrip

ITEM_TYPES = {"message", "function_call", "function_call_output", "reasoning", "item_reference"}
ROLES = {"user", "assistant", "system", "developer"}
ENCRYPTED_PREFIX = "gAAAAAB"  # what OpenAI's encrypted reasoning looks like (Fernet tokens)


def error_body(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def check(body: dict[str, Any]) -> tuple[str, str | None] | None:
    """(message, param) of the 400 the real API gives for this body, or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "Missing required parameter: 'model'.", "model"
    for key in ("stop", "messages", "max_tokens", "max_completion_tokens", "n"):  # Chat Completions' only
        if key in body:
            return f"Unsupported parameter: '{key}'.", key
    raw = body.get("input")
    if raw is None:
        return "Missing required parameter: 'input'.", "input"
    if isinstance(raw, str):
        return None
    if not isinstance(raw, list):
        return "Invalid type for 'input': expected a string or an array.", "input"
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            return f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind not in ITEM_TYPES:
            return f"Invalid value: '{kind}'. Supported values are: {sorted(ITEM_TYPES)}.", f"input[{i}].type"
        if kind == "message" and item.get("role") not in ROLES:
            return f"Invalid value: '{item.get('role')}'.", f"input[{i}].role"
        if kind in ("function_call", "function_call_output") and not isinstance(item.get("call_id"), str):
            return f"Missing required parameter: 'input[{i}].call_id'.", f"input[{i}].call_id"
        if kind == "function_call_output" and "output" not in item:
            return f"Missing required parameter: 'input[{i}].output'.", f"input[{i}].output"
    return None


def _function_tools(body: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace, function tool) of every function the request offers."""
    found: list[tuple[str | None, dict[str, Any]]] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type", "function") == "function":
            found.append((None, tool))
        elif tool.get("type") == "namespace":
            found += [(tool.get("name"), t) for t in tool.get("tools") or [] if isinstance(t, dict)]
    return found


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body["input"]
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [item for item in raw if isinstance(item, dict)]


def _item_text(item: dict[str, Any]) -> str:
    output = item.get("output") if item.get("type") == "function_call_output" else item.get("content")
    return output if isinstance(output, str) else text_of(output)


class ResponsesPlan:
    """What to answer, and which tool (with its namespace) to call."""

    def __init__(self, body: dict[str, Any], script: ToolRoundTrip | None = None) -> None:
        items = _items(body)
        last = items[-1] if items else {}
        self.namespace: str | None = None
        instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else ""
        prompt_text = " ".join([instructions, *(_item_text(i) for i in items)])
        if script is not None:
            tools = _function_tools(body)
            self.plan: Plan = script.plan(
                offered=[tool.get("name", "") for _, tool in tools],
                tool_results=[_item_text(i) for i in items if i.get("type") == "function_call_output"],
                prompt_text=prompt_text,
                message_count=len(items),
            )
            if self.plan.tool is not None:
                self.namespace = next((ns for ns, tool in tools if tool.get("name") == script.tool), None)
        else:
            self.plan = make_plan(
                prefix="fake-openai",
                last_text=_item_text(last),
                prompt_text=prompt_text,
                message_count=len(items),
                tool=self._tool(body, last),
                max_tokens=body.get("max_output_tokens"),
            )
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        self.reasoning = bool(reasoning.get("effort"))  # a reasoning model thinks when asked to
        self.summary = reasoning.get("summary") or reasoning.get("generate_summary")

    def _tool(self, body: dict[str, Any], last: dict[str, Any]) -> ToolSpec | None:
        tools = _function_tools(body)
        choice = body.get("tool_choice")
        user_turn = last.get("type", "message") == "message" and last.get("role") == "user"
        if not tools or not user_turn or choice == "none":
            return None
        wanted = choice.get("name") if isinstance(choice, dict) else None
        namespace, chosen = next(((ns, t) for ns, t in tools if t.get("name") == wanted), tools[0])
        self.namespace = namespace
        return ToolSpec(chosen.get("name", "tool"), chosen.get("parameters"))

    @property
    def reasoning_tokens(self) -> int:
        return 7 if self.reasoning else 0

    def usage(self) -> dict[str, Any]:
        plan = self.plan
        output = plan.completion_tokens + self.reasoning_tokens
        return {
            "input_tokens": plan.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": plan.prompt_tokens + output,
        }


class ResponsesRenderer:
    """One answer in the wire format, plain or streamed; ids derive from the request."""

    def __init__(self, body: dict[str, Any], seed: bytes, model: str, script: ToolRoundTrip | None = None) -> None:
        self.body = body
        self.model = model
        self.plan = ResponsesPlan(body, script)
        self.response_id = "resp_" + stable_id(seed, 48).lower()
        self.message_id = "msg_" + stable_id(seed + b"m", 48).lower()
        self.call_item_id = "fc_" + stable_id(seed + b"f", 48).lower()
        self.reasoning_id = "rs_" + stable_id(seed + b"r", 48).lower()
        self.call_id = "call_" + stable_id(seed + b"c", 24)
        self.encrypted = ENCRYPTED_PREFIX + stable_id(seed + b"e", 60)

    # -- items

    def _reasoning_item(self, done: bool) -> dict[str, Any]:
        summary = [{"type": "summary_text", "text": self.summary_text}] if done and self.plan.summary else []
        return {"id": self.reasoning_id, "type": "reasoning", "encrypted_content": self.encrypted, "summary": summary}

    @property
    def summary_text(self) -> str:
        return "**Thinking it over**\n\nThe fake considers the question."

    def _message_item(self, done: bool) -> dict[str, Any]:
        content = (
            [{"type": "output_text", "annotations": [], "logprobs": [], "text": self.plan.plan.text}] if done else []
        )
        status = "completed" if done else "in_progress"
        return {"id": self.message_id, "type": "message", "status": status, "content": content, "role": "assistant"}

    def _call_item(self, done: bool) -> dict[str, Any]:
        plan = self.plan.plan
        assert plan.tool is not None
        item: dict[str, Any] = {
            "id": self.call_item_id,
            "type": "function_call",
            "status": "completed" if done else "in_progress",
            "arguments": plan.arguments_json if done else "",
            "call_id": self.call_id,
            "name": plan.tool.name,
        }
        if self.plan.namespace:
            item["namespace"] = self.plan.namespace
        return item

    def output(self) -> list[dict[str, Any]]:
        items = [self._reasoning_item(True)] if self.plan.reasoning else []
        items.append(self._call_item(True) if self.plan.plan.tool is not None else self._message_item(True))
        return items

    def response(self, status: str, output: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
        body, done = self.body, status != "in_progress"
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "background": False,
            "completed_at": CREATED + 1 if done else None,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
            "safety_identifier": None,
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    @property
    def status(self) -> str:
        return "incomplete" if self.plan.plan.finish == "length" else "completed"

    def whole(self) -> dict[str, Any]:
        return self.response(self.status, self.output(), self.plan.usage())

    # -- stream

    def frames(self) -> list[bytes]:
        frames: list[bytes] = []

        def event(kind: str, **fields: Any) -> None:
            data = {"type": kind, "sequence_number": len(frames), **fields}
            frames.append(b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n")

        def obfuscation(piece: str) -> str:
            return stable_id(piece, 1 + len(piece) % 14)

        started = self.response("in_progress", [], None)
        event("response.created", response=started)
        event("response.in_progress", response=started)
        index = 0
        if self.plan.reasoning:
            where = {"item_id": self.reasoning_id, "output_index": index}
            event("response.output_item.added", output_index=index, item=self._reasoning_item(False))
            if self.plan.summary:
                event(
                    "response.reasoning_summary_part.added",
                    **where,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
                for piece in split_pieces(self.summary_text):
                    event(
                        "response.reasoning_summary_text.delta",
                        **where,
                        summary_index=0,
                        delta=piece,
                        obfuscation=obfuscation(piece),
                    )
                event("response.reasoning_summary_text.done", **where, summary_index=0, text=self.summary_text)
                event(
                    "response.reasoning_summary_part.done",
                    **where,
                    summary_index=0,
                    part={"type": "summary_text", "text": self.summary_text},
                )
            event("response.output_item.done", output_index=index, item=self._reasoning_item(True))
            index += 1
        plan = self.plan.plan
        if plan.tool is not None:
            where = {"item_id": self.call_item_id, "output_index": index}
            event("response.output_item.added", output_index=index, item=self._call_item(False))
            for fragment in split_fragments(plan.arguments_json):
                event(
                    "response.function_call_arguments.delta", **where, delta=fragment, obfuscation=obfuscation(fragment)
                )
            event("response.function_call_arguments.done", **where, arguments=plan.arguments_json)
            event("response.output_item.done", output_index=index, item=self._call_item(True))
        else:
            where = {"item_id": self.message_id, "output_index": index, "content_index": 0}
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            event("response.output_item.added", output_index=index, item=self._message_item(False))
            event("response.content_part.added", **where, part=part)
            for piece in plan.pieces:
                event("response.output_text.delta", **where, delta=piece, logprobs=[], obfuscation=obfuscation(piece))
            event("response.output_text.done", **where, text=plan.text, logprobs=[])
            event("response.content_part.done", **where, part={**part, "text": plan.text})
            event("response.output_item.done", output_index=index, item=self._message_item(True))
        final = "response.completed" if self.status == "completed" else "response.incomplete"
        event(final, response=self.whole())
        return frames


def answer(request: RecordedRequest, body: dict[str, Any], model: str, script: ToolRoundTrip | None = None) -> Reply:
    """The answer to a valid ``POST /v1/responses`` (or its ``input_tokens``)."""
    renderer = ResponsesRenderer(body, request.body, model, script)
    if request.path.endswith("/input_tokens"):
        return json_reply({"object": "response.input_tokens", "input_tokens": renderer.plan.plan.prompt_tokens})
    if body.get("stream"):
        return Reply(content_type=SSE_UTF8, chunks=renderer.frames())
    return json_reply(renderer.whole())
