"""The request a coding agent sends on its tenth turn, as the side-by-side harness sends it
(`../shared/bench/peers`, `agent` mode): about 80 KB of JSON with a long system prompt, 16 tools
with JSON schemas and 30 earlier messages (assistant tool calls, tool results, user turns),
streamed. `bench.run` and `bench.in_process` send this same body, so their figures compare with
the harness's."""

from __future__ import annotations

import json
from typing import Any

_SENTENCE = (
    "the gateway forwards each request to the provider chosen by its route and translates the answer "
    "back into the format the client asked for while counting tokens for limits and metrics"
)
_WORDS = _SENTENCE.split()


def _text(count: int, seed: int) -> str:
    return " ".join(_WORDS[(seed + i * 7) % len(_WORDS)] for i in range(count))


def agent_request(model: str) -> dict[str, Any]:
    """The agent's Chat Completions request (deterministic: the harness's `agent_request_body`)."""
    tools = []
    for t in range(16):
        props = {
            f"arg_{t}_{k}": {"type": ["string", "integer", "boolean"][k % 3], "description": _text(24, t + k)}
            for k in range(8)
        }
        parameters = {"type": "object", "properties": props, "required": list(props)[:3]}
        tools.append(
            {
                "type": "function",
                "function": {"name": f"tool_{t}", "description": _text(120, t), "parameters": parameters},
            }
        )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": _text(2600, 1)},
        {"role": "user", "content": _text(60, 2)},
    ]
    for turn in range(7):
        arguments = json.dumps({f"arg_{turn}_0": _text(10, turn)})
        call = {
            "id": f"call_{turn:04d}",
            "type": "function",
            "function": {"name": f"tool_{turn}", "arguments": arguments},
        }
        messages += [
            {"role": "assistant", "content": _text(40, turn), "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": _text(420, turn + 3)},
            {"role": "assistant", "content": _text(80, turn + 5)},
            {"role": "user", "content": _text(50, turn + 9)},
        ]
    return {
        "model": model,
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": 1024,
        "temperature": 0.2,
        "user": "bench-user-0001",
        "stream": True,
    }


def agent_request_body(model: str) -> bytes:
    """The request's bytes as the harness sends them (compact separators)."""
    return json.dumps(agent_request(model), separators=(",", ":")).encode()
