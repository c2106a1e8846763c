"""What of a Messages body the canonical request carries (see `formats.carried`).

Only what `render_request` writes back as the client sent it counts: `cache_control`,
`citations`, adaptive thinking, `output_config.effort`, server tools and every field the
gateway does not model are not carried. `stream` and `metadata.user_id` cannot change the
answer's content.
"""

from __future__ import annotations

from typing import Any

from extproc.formats.carried import CARRIED, Choose, Each, Fields

_NOTHING = Fields({})
_TEXT = Fields({"type": CARRIED, "text": CARRIED})
_IMAGE = Fields(
    {
        "type": CARRIED,
        "source": Choose(
            "type",
            {
                "base64": Fields({"type": CARRIED, "media_type": CARRIED, "data": CARRIED}),
                "url": Fields({"type": CARRIED, "url": CARRIED}),
            },
            _NOTHING,
        ),
    }
)
_BLOCK = Choose(
    "type",
    {
        "text": _TEXT,
        "image": _IMAGE,
        "tool_use": Fields({"type": CARRIED, "id": CARRIED, "name": CARRIED, "input": CARRIED}),
        "tool_result": Fields(
            {
                "type": CARRIED,
                "tool_use_id": CARRIED,
                "content": Each(Choose("type", {"text": _TEXT, "image": _IMAGE}, _NOTHING)),
                "is_error": CARRIED,
            }
        ),
        "thinking": Fields({"type": CARRIED, "thinking": CARRIED, "signature": CARRIED}),
        "redacted_thinking": Fields({"type": CARRIED, "data": CARRIED}),
    },
    _NOTHING,
)

MESSAGES = Fields(
    {
        "model": CARRIED,
        "max_tokens": CARRIED,
        "stream": CARRIED,
        "metadata": Fields({"user_id": CARRIED}),
        "system": Each(_TEXT),
        "messages": Each(Fields({"role": CARRIED, "content": Each(_BLOCK)})),
        "temperature": CARRIED,
        "top_p": CARRIED,
        "top_k": CARRIED,
        "stop_sequences": CARRIED,
        "output_config": Fields({"format": Fields({"type": CARRIED, "schema": CARRIED})}),
        "thinking": Choose(
            "type",
            {
                "enabled": Fields({"type": CARRIED, "budget_tokens": CARRIED}),
                "disabled": Fields({"type": CARRIED}),
            },
            _NOTHING,
        ),
        "tools": Each(
            Fields(
                {"type": CARRIED, "name": CARRIED, "description": CARRIED, "input_schema": CARRIED, "strict": CARRIED}
            )
        ),
        "tool_choice": Fields({"type": CARRIED, "name": CARRIED, "disable_parallel_tool_use": CARRIED}),
    }
)


def asks_for_uncarried_answer(body: dict[str, Any]) -> bool:
    """The body asks for answer parts the canonical answer does not carry: an MCP server's
    tool use and results. A replay from the cache could not give them back."""
    return body.get("mcp_servers") is not None
