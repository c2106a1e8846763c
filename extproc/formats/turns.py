"""The turns of a provider request whose API wants user and assistant to alternate, with a user
turn's tool results first (Anthropic's Messages, and Bedrock's Converse, which Claude answers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Block = dict[str, Any]


def append_turn(messages: list[Block], role: str, blocks: list[Block]) -> None:
    """Consecutive turns of one role merge into one."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def results_first(message: Block, is_result: Callable[[Block], bool]) -> None:
    """A user turn's tool results move before its other blocks when one follows another block (each
    keeps its order): Claude refuses a tool result after text in the turn that answers its call."""
    blocks = message["content"]
    if len(blocks) < 2:  # nothing to move: most turns
        return
    seen_other = False
    for block in blocks:
        if not is_result(block):
            seen_other = True
        elif seen_other:
            message["content"] = [b for b in blocks if is_result(b)] + [b for b in blocks if not is_result(b)]
            return
