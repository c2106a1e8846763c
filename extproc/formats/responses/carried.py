"""What of a `/v1/responses` body the canonical request carries (see `formats.carried`).

Only what the canonical request says as the client sent it counts: the `developer` role (a
system message), a namespace's description, annotations and log probabilities in history,
`text.verbosity`, `include`, `truncation`, `service_tier`, hosted tools and every field the
gateway does not model are not carried. Item ids and statuses, `stream`, `user`, `store`
and the bookkeeping fields (`metadata`, `prompt_cache_key`, `client_metadata`,
`safety_identifier`) cannot change the answer's content; stored state and hosted tools make a
request whose answer is not replayed at all (`asks_for_uncarried_answer`).
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import ApiFeature
from extproc.formats.carried import CARRIED, Choose, Each, Fields, When

_NOTHING = Fields({})
_ITEM = {"type": CARRIED, "id": CARRIED, "status": CARRIED}  # ids and statuses cannot change the answer


def _empty(value: Any, parent: dict[str, Any]) -> bool:
    return not value


def _not_developer(value: Any, parent: dict[str, Any]) -> bool:
    return value != "developer"  # a developer message is sent on as a system message


def _is_function(value: Any, parent: dict[str, Any]) -> bool:
    return value == "function"


def _without_summary(value: Any, parent: dict[str, Any]) -> bool:
    return not parent.get("summary")  # the reasoning's text is read only when it has no summary


_TEXT = Fields({"type": CARRIED, "text": CARRIED, "annotations": When(_empty), "logprobs": When(_empty)})
_PARTS = Each(
    Choose(
        "type",
        {
            "input_text": _TEXT,
            "output_text": _TEXT,
            "refusal": Fields({"type": CARRIED, "refusal": CARRIED}),
            "input_image": Fields({"type": CARRIED, "image_url": CARRIED, "detail": CARRIED}),
            "input_file": Fields({"type": CARRIED, "file_data": CARRIED, "file_url": CARRIED, "filename": CARRIED}),
        },
        _NOTHING,
    )
)
_MESSAGE = Fields({**_ITEM, "role": When(_not_developer), "content": _PARTS})
_INPUT = Each(
    Choose(
        "type",
        {
            "message": _MESSAGE,
            "function_call": Fields(
                {**_ITEM, "call_id": CARRIED, "name": CARRIED, "namespace": CARRIED, "arguments": CARRIED}
            ),
            "function_call_output": Fields({**_ITEM, "call_id": CARRIED, "output": _PARTS}),
            "reasoning": Fields(
                {
                    **_ITEM,
                    "summary": Each(Fields({"type": CARRIED, "text": CARRIED})),
                    "content": When(_without_summary),
                    "encrypted_content": CARRIED,
                }
            ),
        },
        _MESSAGE,  # the SDKs' short form {role, content} has no type
    )
)
_FUNCTION = Fields(
    {"type": When(_is_function), "name": CARRIED, "description": CARRIED, "parameters": CARRIED, "strict": CARRIED}
)
_TOOL = Choose(
    "type",
    {"function": _FUNCTION, "namespace": Fields({"type": CARRIED, "name": CARRIED, "tools": Each(_FUNCTION)})},
    _FUNCTION,  # a tool without a type is a function; one of another type is not carried
)

RESPONSES = Fields(
    {
        "model": CARRIED,
        "input": _INPUT,
        "instructions": CARRIED,
        "stream": CARRIED,
        "stream_options": CARRIED,
        "user": CARRIED,
        "store": CARRIED,
        "metadata": CARRIED,
        "prompt_cache_key": CARRIED,
        "client_metadata": CARRIED,
        "safety_identifier": CARRIED,
        "max_output_tokens": CARRIED,
        "temperature": CARRIED,
        "top_p": CARRIED,
        "text": Fields({"format": Fields({"type": CARRIED, "name": CARRIED, "schema": CARRIED, "strict": CARRIED})}),
        "tools": Each(_TOOL),
        "tool_choice": Fields({"type": CARRIED, "name": CARRIED, "namespace": CARRIED}),
        "parallel_tool_calls": CARRIED,
        "reasoning": Fields({"effort": CARRIED, "summary": CARRIED, "generate_summary": CARRIED}),
    }
)

_REPLAYABLE_INCLUDES = frozenset({"reasoning.encrypted_content"})  # a canonical answer holds it


def asks_for_uncarried_answer(body: dict[str, Any], features: list[ApiFeature]) -> bool:
    """The body asks for an answer the canonical answer does not carry: one the provider keeps
    (stored state, a background run, a conversation), a hosted tool's calls and results, log
    probabilities, or included output beyond encrypted reasoning. A replay from the cache could
    not give it back."""
    include = body.get("include")
    return (
        any(feature.when_foreign == "refuse" for feature in features)
        or body.get("top_logprobs") is not None
        or (isinstance(include, list) and not _REPLAYABLE_INCLUDES.issuperset(i for i in include if isinstance(i, str)))
        or any(feature.name.startswith("tools.") for feature in features)
    )
