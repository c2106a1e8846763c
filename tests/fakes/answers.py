"""A scripted model answer (text, reasoning, tool calls, usage with cache reads and writes) and its renderings
in the formats the cloud fakes serve: Bedrock Converse (JSON and stream events), Anthropic Messages (JSON and
stream events; Claude on Bedrock and on Vertex) and Gemini (JSON and stream chunks; Gemini on Vertex).

A test queues one with ``fake.enqueue_answer(Answer(...))``; the fake renders it in whatever the next request
asks for, streamed or not. The fakes' default answers are rendered by the same code (``Answer.from_plan``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fakes.base import stable_id
from tests.fakes.plans import Plan, count_tokens, split_fragments, split_pieces

Event = tuple[str, dict[str, Any]]  # (event type, payload)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # None: derived from the name and arguments, in the format's own id style

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()

    def id_for(self, prefix: str) -> str:
        return self.id or prefix + stable_id(self.name + self.arguments_json, 22)


@dataclass(frozen=True)
class Answer:
    """What the model says. ``stop_reason`` is in Bedrock/Anthropic spelling (``end_turn``, ``tool_use``,
    ``max_tokens``, ``stop_sequence``); None means ``tool_use`` when there are tool calls, else ``end_turn``.
    ``input_tokens`` excludes the cached tokens, as Bedrock and Anthropic count them."""

    text: str = ""
    reasoning: str | None = None
    reasoning_signature: str | None = None  # None: derived from the reasoning text
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 10
    output_tokens: int | None = None  # None: counted from the text, the reasoning and the arguments
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    stop_reason: str | None = None

    @classmethod
    def from_plan(cls, plan: Plan, reasoning: str | None = None) -> Answer:
        calls = () if plan.tool is None else (ToolCall(plan.tool.name, plan.arguments),)
        stop = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}[plan.finish]
        output = plan.completion_tokens + (count_tokens(reasoning) if reasoning else 0)
        return cls(plan.text, reasoning, None, calls, plan.prompt_tokens, output, stop_reason=stop)

    @property
    def stop(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_calls else "end_turn")

    @property
    def output_count(self) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        counted = count_tokens(self.text) + count_tokens(self.reasoning or "")
        counted += sum(len(split_fragments(call.arguments_json)) + 1 for call in self.tool_calls)
        return max(counted, 1)

    @property
    def signature(self) -> str:
        """Base64, as the real signatures are (google-genai decodes Gemini's)."""
        digest = hashlib.sha256(("signature:" + (self.reasoning or "")).encode()).digest()
        return self.reasoning_signature or base64.b64encode(digest * 2).decode()

    @property
    def pieces(self) -> list[str]:
        return split_pieces(self.text) or ([self.text] if self.text else [])

    @property
    def cached(self) -> bool:
        return bool(self.cache_read_tokens or self.cache_write_tokens)


# --------------------------------------------------------------------------
# Bedrock Converse
# --------------------------------------------------------------------------

CONVERSE_TOOL_ID = "tooluse_"


def converse_usage(answer: Answer) -> dict[str, Any]:
    """TokenUsage as Bedrock writes it: with a cache in play it also sends the ``...TokenCount`` duplicates
    and ``serverToolUsage`` (not in the service model, but on the wire)."""
    output = answer.output_count
    total = answer.input_tokens + output + answer.cache_read_tokens + answer.cache_write_tokens
    usage: dict[str, Any] = {"inputTokens": answer.input_tokens, "outputTokens": output, "totalTokens": total}
    if answer.cached:
        usage |= {
            "cacheReadInputTokenCount": answer.cache_read_tokens,
            "cacheReadInputTokens": answer.cache_read_tokens,
            "cacheWriteInputTokenCount": answer.cache_write_tokens,
            "cacheWriteInputTokens": answer.cache_write_tokens,
            "serverToolUsage": {},
        }
    return usage


def converse_response(answer: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.reasoning is not None:
        reasoning = {"reasoningText": {"signature": answer.signature, "text": answer.reasoning}}
        content.append({"reasoningContent": reasoning})
    if answer.text or not answer.tool_calls:
        content.append({"text": answer.text})
    for call in answer.tool_calls:
        tool_use = {"input": call.arguments, "name": call.name, "toolUseId": call.id_for(CONVERSE_TOOL_ID)}
        content.append({"toolUse": tool_use})
    return {
        "metrics": {"latencyMs": 268},
        "output": {"message": {"content": content, "role": "assistant"}},
        "stopReason": answer.stop,
        "usage": converse_usage(answer),
    }


def converse_events(answer: Answer) -> list[Event]:
    """ConverseStream's events in Bedrock's order: text and reasoning blocks open on their first delta (no
    ``contentBlockStart``), tool blocks with one; ``messageStop`` and then ``metadata`` last."""
    events: list[Event] = [("messageStart", {"role": "assistant"})]
    index = 0

    def delta(body: dict[str, Any]) -> None:
        events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": body}))

    def stop_block() -> None:
        nonlocal index
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1

    if answer.reasoning is not None:
        for piece in split_pieces(answer.reasoning) or [answer.reasoning]:
            delta({"reasoningContent": {"text": piece}})
        delta({"reasoningContent": {"signature": answer.signature}})
        stop_block()
    if answer.text:
        for piece in answer.pieces:
            delta({"text": piece})
        stop_block()
    for call in answer.tool_calls:
        start = {"toolUse": {"name": call.name, "toolUseId": call.id_for(CONVERSE_TOOL_ID)}}
        events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        for fragment in split_fragments(call.arguments_json):
            delta({"toolUse": {"input": fragment}})
        stop_block()
    events.append(("messageStop", {"stopReason": answer.stop}))
    events.append(("metadata", {"metrics": {"latencyMs": 422}, "usage": converse_usage(answer)}))
    return events


# --------------------------------------------------------------------------
# Anthropic Messages (Claude on Bedrock InvokeModel and on Vertex rawPredict)
# --------------------------------------------------------------------------


def anthropic_usage(answer: Answer, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": answer.cache_write_tokens,
        "cache_read_input_tokens": answer.cache_read_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": answer.cache_write_tokens, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
    }


def anthropic_content(answer: Answer, tool_id_prefix: str) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    if answer.reasoning is not None:
        content.append({"type": "thinking", "thinking": answer.reasoning, "signature": answer.signature})
    if answer.text or not answer.tool_calls:
        content.append({"type": "text", "text": answer.text})
    for call in answer.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id_for(tool_id_prefix), "name": call.name, "input": call.arguments}
        )
    return content


def anthropic_message(answer: Answer, model: str, message_id: str, tool_id_prefix: str) -> dict[str, Any]:
    return {
        "model": model,
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": anthropic_content(answer, tool_id_prefix),
        "stop_reason": answer.stop,
        "stop_sequence": None,
        "usage": anthropic_usage(answer, answer.output_count),
    }


def anthropic_events(
    answer: Answer, model: str, message_id: str, tool_id_prefix: str, *, ping: bool
) -> list[dict[str, Any]]:
    """The Messages stream's events (each a JSON object whose ``type`` names it). ``ping`` adds the ping the
    Anthropic API sends after the first block starts (Bedrock sends none)."""
    start = anthropic_message(answer, model, message_id, tool_id_prefix)
    start.update(content=[], stop_reason=None, usage=anthropic_usage(answer, 1))
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(anthropic_content(answer, tool_id_prefix)):
        deltas: list[dict[str, Any]]
        if block["type"] == "thinking":
            opened: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            pieces = split_pieces(block["thinking"]) or [block["thinking"]]
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in split_pieces(block["text"])]
        else:
            opened = {**block, "input": {}}
            # The real API's first input_json_delta is an empty string.
            fragments = ["", *split_fragments(orjson.dumps(block["input"]).decode())]
            deltas = [{"type": "input_json_delta", "partial_json": fragment} for fragment in fragments]
        events.append({"type": "content_block_start", "index": index, "content_block": opened})
        if ping and index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    usage = {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": answer.cache_write_tokens,
        "cache_read_input_tokens": answer.cache_read_tokens,
        "output_tokens": answer.output_count,
    }
    events.append(
        {"type": "message_delta", "delta": {"stop_reason": answer.stop, "stop_sequence": None}, "usage": usage}
    )
    events.append({"type": "message_stop"})
    return events


def anthropic_sse(events: list[dict[str, Any]]) -> list[bytes]:
    """Anthropic's SSE framing, one event per chunk."""
    return [b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n" for event in events]


# --------------------------------------------------------------------------
# Gemini (on Vertex)
# --------------------------------------------------------------------------

_GEMINI_FINISH = {"end_turn": "STOP", "tool_use": "STOP", "max_tokens": "MAX_TOKENS", "stop_sequence": "STOP"}


def gemini_usage(answer: Answer, candidates: int) -> dict[str, Any]:
    """Gemini counts cached tokens inside the prompt; thoughts apart from the candidates."""
    thoughts = count_tokens(answer.reasoning) if answer.reasoning else 0
    prompt = answer.input_tokens + answer.cache_read_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "trafficType": "ON_DEMAND",
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": candidates}],
    }
    if answer.cache_read_tokens:
        usage["cachedContentTokenCount"] = answer.cache_read_tokens
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def gemini_response(
    answer: Answer, model: str, response_id: str, parts: list[dict[str, Any]], *, final: bool, candidates: int
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if final:
        candidate["finishReason"] = _GEMINI_FINISH.get(answer.stop, "STOP")
    return {
        "candidates": [candidate],
        "usageMetadata": gemini_usage(answer, candidates),
        "modelVersion": model,
        "createTime": "2025-08-14T01:10:33.123456Z",
        "responseId": response_id,
    }


def gemini_parts(answer: Answer) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if answer.reasoning is not None:
        parts.append({"text": answer.reasoning, "thought": True})
    if answer.text or not answer.tool_calls:
        parts.append({"text": answer.text})
    for index, call in enumerate(answer.tool_calls):
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        if index == 0 and answer.reasoning is not None:
            part["thoughtSignature"] = answer.signature
        parts.append(part)
    return parts


def gemini_chunks(answer: Answer, model: str, response_id: str) -> list[dict[str, Any]]:
    """streamGenerateContent's chunks: the thought, then a text piece per chunk, the function calls whole in
    the last one; usage cumulative; finishReason only on the last."""
    groups: list[list[dict[str, Any]]] = []
    if answer.reasoning is not None:
        groups.append([{"text": answer.reasoning, "thought": True}])
    groups += [[{"text": piece}] for piece in answer.pieces]
    calls = [part for part in gemini_parts(answer) if "functionCall" in part]
    if calls:
        groups.append(calls)
    groups = groups or [[{"text": ""}]]
    total = answer.output_count - (count_tokens(answer.reasoning) if answer.reasoning else 0)
    chunks = []
    for index, parts in enumerate(groups):
        final = index == len(groups) - 1
        sent = total if final else min(index + 1, total)
        chunks.append(gemini_response(answer, model, response_id, parts, final=final, candidates=sent))
    return chunks
