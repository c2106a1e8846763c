"""Read the ext_proc's JSON log lines, and each request's access line, in tests."""

from __future__ import annotations

import json
from typing import Any

from tests.support.stack import GatewayStack
from tests.support.wait import wait_until


def log_lines(stack: GatewayStack) -> list[dict[str, Any]]:
    """The ext_proc's JSON lines so far (every process writes to the one file)."""
    text = (stack.workdir / "extproc.log").read_text(errors="replace")
    return [json.loads(raw) for raw in text.splitlines() if raw.startswith("{")]


def access_lines(stack: GatewayStack) -> list[dict[str, Any]]:
    return [line for line in log_lines(stack) if line["logger"] == "extproc.access"]


def access_line(stack: GatewayStack, request_id: str) -> dict[str, Any]:
    """The request's line, once the ext_proc's log thread wrote it."""

    def found() -> dict[str, Any] | None:
        return next((line for line in access_lines(stack) if line["request_id"] == request_id), None)

    assert wait_until(lambda: found() is not None, timeout=5), f"no access line for {request_id}"
    return found() or {}
