"""A scripted tool round trip that any client can be driven through, in any wire format.

Real agent clients (Claude Code, Codex, apps on the Agents SDK) offer their own tools and
decide for themselves when to call them, so a default answer (the first tool, made-up
arguments) does not drive them anywhere useful. A :class:`ToolRoundTrip` set on a fake
provider (``fake.script = ToolRoundTrip(...)``) makes it answer like a model that knows
the task:

- while the conversation carries no tool result, it asks for ``tool`` with ``arguments``
  (when the client offered that tool; otherwise it says, in text, what was offered);
- once a tool result came back, it answers with text quoting the latest result.

Each fake renders the plan in its own format, streamed when the request streams. The
script records what it saw, so a test can check that the result really reached the
provider (and not only that the client printed something).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.plans import Plan, ToolSpec, count_tokens, split_pieces

ANSWER_PREFIX = "The tool returned: "


@dataclass
class ToolRoundTrip:
    tool: str
    arguments: dict[str, Any]
    answer_prefix: str = ANSWER_PREFIX
    # One entry per request answered: the tool names the client offered, the results it sent.
    offered: list[list[str]] = field(default_factory=list)
    results: list[list[str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def results_seen(self) -> list[str]:
        """Every tool result any request carried, in order (a result repeats in later turns)."""
        with self._lock:
            return [result for turn in self.results for result in turn]

    @property
    def tool_calls_asked(self) -> int:
        with self._lock:
            return sum(
                1
                for offered, results in zip(self.offered, self.results, strict=True)
                if not results and self.tool in offered
            )

    def plan(self, *, offered: list[str], tool_results: list[str], prompt_text: str, message_count: int) -> Plan:
        with self._lock:
            self.offered.append(offered)
            self.results.append(tool_results)
        prompt_tokens = count_tokens(prompt_text) + 3 * max(message_count, 1)
        if tool_results:
            return _text_plan(self.answer_prefix + tool_results[-1], prompt_tokens)
        if self.tool in offered:
            return Plan("", [], "tool", prompt_tokens, ToolSpec(self.tool, None), dict(self.arguments))
        return _text_plan(
            f"the tool {self.tool!r} was not offered; offered: {', '.join(offered) or 'none'}", prompt_tokens
        )


def _text_plan(text: str, prompt_tokens: int) -> Plan:
    pieces = split_pieces(text) or [text]
    return Plan(text, pieces, "stop", prompt_tokens)
