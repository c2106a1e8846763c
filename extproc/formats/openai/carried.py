"""What of a `/v1/chat/completions` body the canonical request carries (see `formats.carried`).

Only what `render_request` writes back as the client sent it counts: `top_k` (dropped for
OpenAI), a participant's `name`, an assistant's `refusal`, the `developer` role (sent on as
`system`) and every field the gateway does not model are not carried. `stream`,
`stream_options` and `user` cannot change the answer's content.
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import ApiFeature
from extproc.formats.carried import CARRIED, Choose, Each, Fields, When

_NOTHING = Fields({})
_TEXT = Fields({"type": CARRIED, "text": CARRIED})
_IMAGE = Fields({"type": CARRIED, "image_url": Fields({"url": CARRIED, "detail": CARRIED})})
_TOOL_CALL = Fields({"id": CARRIED, "type": CARRIED, "function": Fields({"name": CARRIED, "arguments": CARRIED})})


def _message(**members: Any) -> Fields:
    return Fields({"role": CARRIED, **members})


_MESSAGE = Choose(
    "role",
    {
        "system": _message(content=Each(_TEXT)),
        "user": _message(content=Each(Choose("type", {"text": _TEXT, "image_url": _IMAGE}, _NOTHING))),
        "assistant": _message(content=Each(Choose("type", {"text": _TEXT}, _NOTHING)), tool_calls=Each(_TOOL_CALL)),
        "tool": _message(content=Each(_TEXT), tool_call_id=CARRIED),
    },
    Fields({"content": Each(_TEXT)}),  # developer: its role is not carried
)


def _max_tokens_read(value: Any, body: dict[str, Any]) -> bool:
    return body.get("max_completion_tokens") is None  # else the parser took that one


CHAT = Fields(
    {
        "model": CARRIED,
        "messages": Each(_MESSAGE),
        "stream": CARRIED,
        "stream_options": CARRIED,
        "user": CARRIED,
        "max_completion_tokens": CARRIED,
        "max_tokens": When(_max_tokens_read),
        "temperature": CARRIED,
        "top_p": CARRIED,
        "n": CARRIED,
        "seed": CARRIED,
        "presence_penalty": CARRIED,
        "frequency_penalty": CARRIED,
        "stop": CARRIED,
        "response_format": Fields(
            {"type": CARRIED, "json_schema": Fields({"name": CARRIED, "schema": CARRIED, "strict": CARRIED})}
        ),
        "tools": Each(
            Fields(
                {
                    "type": CARRIED,
                    "function": Fields(
                        {"name": CARRIED, "description": CARRIED, "parameters": CARRIED, "strict": CARRIED}
                    ),
                }
            )
        ),
        "tool_choice": Fields({"type": CARRIED, "function": Fields({"name": CARRIED})}),
        "parallel_tool_calls": CARRIED,
        "reasoning_effort": CARRIED,
    }
)


def asks_for_uncarried_answer(body: dict[str, Any], features: list[ApiFeature]) -> bool:
    """The body asks for answer parts the canonical answer does not carry: log probabilities,
    audio, web search annotations, a custom tool's calls. A replay from the cache could not give
    them back."""
    modalities, tools = body.get("modalities"), body.get("tools")
    return (
        bool(body.get("logprobs"))
        or body.get("top_logprobs") is not None
        or body.get("audio") is not None
        or (isinstance(modalities, list) and "audio" in modalities)
        or body.get("web_search_options") is not None
        or (
            isinstance(tools, list)
            and any(isinstance(t, dict) and t.get("type", "function") != "function" for t in tools)
        )
    )
