"""Shared by the Responses API's client and provider sides: ids, namespaced tool names,
usage, finish reasons and statuses."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from extproc.formats.answer_values import count
from extproc.formats.canonical import FinishReason, Usage

MAX_TOOL_NAME = 64  # OpenAI's limit on a function name; others allow as much or more
NAMESPACE_JOINER = "__"

# finish reason -> (status, incomplete_details.reason)
_STATUS_OUT: dict[str, tuple[str, str | None]] = {
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}
_INCOMPLETE_IN: dict[str, FinishReason] = {"max_output_tokens": "length", "content_filter": "content_filter"}


def new_response_id() -> str:
    return "resp_" + os.urandom(24).hex()


def response_id(source: str) -> str:
    """Responses ids start with resp_; another provider's id is kept after it for tracing."""
    if not source:
        return new_response_id()
    return source if source.startswith("resp_") else "resp_" + source


def new_item_id(prefix: str) -> str:
    """`msg_`, `fc_` or `rs_` and 48 random hex digits, as OpenAI's own output items."""
    return prefix + os.urandom(24).hex()


def flat_tool_name(namespace: str, name: str) -> str:
    """A namespace's tool as one function name, for providers without namespaces. Within the
    length every provider accepts: a long one keeps its start and a hash of the whole."""
    flat = f"{namespace}{NAMESPACE_JOINER}{name}"
    if len(flat) <= MAX_TOOL_NAME:
        return flat
    digest = hashlib.sha256(flat.encode()).hexdigest()[:8]
    return f"{flat[: MAX_TOOL_NAME - 9]}_{digest}"


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def parse_usage(raw: Any) -> Usage | None:
    """A Responses `usage` object (input includes cached tokens, output includes reasoning)."""
    if not isinstance(raw, dict):
        return None
    inputs = raw.get("input_tokens_details")
    outputs = raw.get("output_tokens_details")
    return Usage(
        input_tokens=count(raw, "input_tokens"),
        output_tokens=count(raw, "output_tokens"),
        cached_tokens=count(inputs, "cached_tokens") if isinstance(inputs, dict) else 0,
        reasoning_tokens=count(outputs, "reasoning_tokens") if isinstance(outputs, dict) else 0,
    )


def status_of(reason: str | None) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) of an answer that ended for `reason`."""
    status, why = _STATUS_OUT.get(reason or "stop", ("completed", None))
    return status, {"reason": why} if why else None


def finish_of(status: Any, incomplete: Any, has_calls: bool) -> FinishReason:
    """A finished Responses answer's canonical finish reason."""
    if status == "incomplete":
        why = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return _INCOMPLETE_IN.get(why if isinstance(why, str) else "", "length")
    return "tool_calls" if has_calls else "stop"
