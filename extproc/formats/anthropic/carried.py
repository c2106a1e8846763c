"""What of a Messages body the canonical request carries (see `formats.carried`).

Only what `render_request` writes back as the client sent it counts: `cache_control`,
`citations`, adaptive thinking, `output_config.effort`, server tools and every field the
gateway does not model are not carried. `stream` and `metadata.user_id` cannot change the
answer's content.
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import ApiFeature
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


def asks_for_uncarried_answer(body: dict[str, Any], features: list[ApiFeature]) -> bool:
    """The body asks for answer parts the canonical answer does not carry: a server tool's use
    and results (web search, code execution, an MCP server's), citations of a document. A replay
    from the cache could not give them back."""
    tools = body.get("tools")
    if body.get("mcp_servers") is not None or (
        isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") not in (None, "custom") for t in tools)
    ):
        return True
    return any(  # a document or search result block is an API feature of the request: few to look at
        feature.name in _CITABLE and isinstance(feature.value, dict) and _citations_on(feature.value.get("citations"))
        for feature in features
    )


_CITABLE = frozenset({"content.document", "content.search_result"})


def _citations_on(citations: Any) -> bool:
    return isinstance(citations, dict) and bool(citations.get("enabled"))
