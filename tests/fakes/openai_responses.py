"""The OpenAI Responses API (``POST /v1/responses``) of the fake OpenAI server, plain and SSE.

Shapes follow recorded traffic (pydantic-ai's ``test_openai_responses`` cassettes): a
``response`` object whose ``output`` holds ``message`` items (``output_text`` parts) or
``function_call`` items; a stream of ``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta``/``.done`` (or ``response.function_call_arguments.delta``/
``.done``), ``response.content_part.done``, ``response.output_item.done`` and
``response.completed``, each with its ``sequence_number``.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.base import CREATED, SSE_UTF8, Reply, dumps, json_reply, stable_id
from tests.fakes.plans import Plan, ToolSpec, make_plan, split_fragments, text_of
from tests.fakes.script import ToolRoundTrip


def function_tools(tools: Any) -> list[dict[str, Any]]:
    """Function tools, those inside ``namespace`` tools included (hosted tools have no function to call)."""
    found: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function" and isinstance(tool.get("name"), str):
            found.append(tool)
        elif tool.get("type") == "namespace":
            found += function_tools(tool.get("tools"))
    return found


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [item for item in raw or [] if isinstance(item, dict)]


def _output_text(item: dict[str, Any]) -> str:
    output = item.get("output")
    return output if isinstance(output, str) else text_of(output)


def plan_responses(body: dict[str, Any], script: ToolRoundTrip | None) -> Plan:
    items = input_items(body)
    messages = [item for item in items if item.get("type", "message") == "message"]
    prompt = " ".join([text_of(body.get("instructions")), *(text_of(m.get("content")) for m in messages)])
    results = [_output_text(item) for item in items if item.get("type") == "function_call_output"]
    tools = function_tools(body.get("tools"))
    if script is not None:
        return script.plan(
            offered=[t["name"] for t in tools], tool_results=results, prompt_text=prompt, message_count=len(items)
        )
    last = items[-1] if items else {}
    tool = None
    wants_tool = last.get("type", "message") == "message" and last.get("role") == "user"
    if tools and wants_tool and body.get("tool_choice") != "none":
        tool = ToolSpec(tools[0]["name"], tools[0].get("parameters"))
    return make_plan(
        prefix="fake-openai",
        last_text=results[-1] if results and not wants_tool else text_of(last.get("content")),
        prompt_text=prompt,
        message_count=len(items),
        tool=tool,
        max_tokens=body.get("max_output_tokens"),
    )


class ResponsesAnswer:
    """One answer to one ``POST /v1/responses``, as a whole object or as its SSE events."""

    def __init__(self, body: dict[str, Any], plan: Plan, seed: bytes) -> None:
        self.body = body
        self.plan = plan
        self.response_id = "resp_" + stable_id(seed, 48).lower()
        self.item_id = ("fc_" if plan.tool else "msg_") + stable_id(seed + b"item", 48).lower()
        self.call_id = "call_" + stable_id(seed + b"call", 24)

    def reply(self) -> Reply:
        if self.body.get("stream"):
            return Reply(content_type=SSE_UTF8, chunks=self.events())
        return json_reply(self.response("completed", [self.item("completed")]))

    def item(self, status: str) -> dict[str, Any]:
        done = status == "completed"
        if self.plan.tool is not None:
            return {
                "id": self.item_id,
                "type": "function_call",
                "status": status,
                "arguments": self.plan.arguments_json if done else "",
                "call_id": self.call_id,
                "name": self.plan.tool.name,
            }
        content = [self.part(self.plan.text)] if done else []
        return {"id": self.item_id, "type": "message", "status": status, "content": content, "role": "assistant"}

    @staticmethod
    def part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    def usage(self) -> dict[str, Any]:
        output = self.plan.completion_tokens
        return {
            "input_tokens": self.plan.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.plan.prompt_tokens + output,
        }

    def response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        body, done = self.body, status != "in_progress"
        incomplete = status == "incomplete"
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "background": False,
            "completed_at": CREATED + 1 if done else None,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": body.get("model"),
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None},
            "safety_identifier": None,
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": 0,
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": self.usage() if done else None,
            "user": None,
            "metadata": body.get("metadata") or {},
        }

    def events(self) -> list[bytes]:
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": self.response("in_progress", [])},
            {"type": "response.in_progress", "response": self.response("in_progress", [])},
            {"type": "response.output_item.added", "output_index": 0, "item": self.item("in_progress")},
        ]
        where = {"output_index": 0, "item_id": self.item_id}
        if self.plan.tool is not None:
            arguments = self.plan.arguments_json
            events += [
                {"type": "response.function_call_arguments.delta", **where, "delta": fragment}
                for fragment in split_fragments(arguments)
            ]
            events.append({"type": "response.function_call_arguments.done", **where, "arguments": arguments})
        else:
            text, part = self.plan.text, {**where, "content_index": 0}
            events.append({"type": "response.content_part.added", **part, "part": self.part("")})
            events += [
                {"type": "response.output_text.delta", **part, "delta": piece, "logprobs": []}
                for piece in self.plan.pieces
            ]
            events.append({"type": "response.output_text.done", **part, "text": text, "logprobs": []})
            events.append({"type": "response.content_part.done", **part, "part": self.part(text)})
        item = self.item("completed")
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
        final = "incomplete" if self.plan.finish == "length" else "completed"
        events.append({"type": f"response.{final}", "response": self.response(final, [item])})
        return [
            b"event: " + event["type"].encode() + b"\ndata: " + dumps({**event, "sequence_number": number}) + b"\n\n"
            for number, event in enumerate(events)
        ]
