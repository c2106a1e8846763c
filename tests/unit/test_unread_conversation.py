"""A request whose bytes go on to a provider of its own API is read without its conversation
(OpenAI's messages and tools, Anthropic's system, messages and tools): the top level is read and
checked, the conversation's bytes are kept as the client wrote them, and read only when the
gateway needs them. What a whole read refuses is refused the same way; what it reads is the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError
from extproc.formats import FORMATS, anthropic, openai
from extproc.formats.canonical import ChatRequest, read_conversation

PARSERS: dict[str, Callable[..., ChatRequest]] = {
    "openai": openai.parse_request,
    "anthropic": anthropic.parse_request,
}
# Whitespace and key order no JSON writer of ours produces: kept only if the bytes were not written again.
CONVERSATIONS: dict[str, dict[str, bytes]] = {
    "openai": {
        "messages": b'[ {"role":"system",  "content":"be brief"},\n {"content": [{"type":"text","text":"hi \\u00e9"}], "role":"user"} ]',
        "tools": b'[ {"type":"function","function":{"name":"look","parameters":{"type":"object"}}} ]',
    },
    "anthropic": {
        "system": b'[ {"type":"text", "text":"be brief"} ]',
        "messages": b'[ {"content":[{"type":"text","text":"hi \\u00e9"}],  "role":"user"} ]',
        "tools": b'[ {"name":"look","input_schema":{"type":"object"}} ]',
    },
}


def body(fmt: str, model: str = "client-model", conversation: bytes | None = None) -> bytes:
    if conversation is None:
        conversation = b", ".join(b'"%s" : %s' % (key.encode(), value) for key, value in CONVERSATIONS[fmt].items())
    return b'{"model":"' + model.encode() + b'", "max_tokens": 50, "stream": true, ' + conversation + b"}"


def refusal(call: Callable[[], Any]) -> tuple[str, str | None]:
    with pytest.raises(GatewayError) as refused:
        call()
    return refused.value.message, refused.value.param


@pytest.mark.parametrize("fmt", PARSERS)
def test_a_renamed_body_carries_its_conversation_as_the_client_wrote_it(fmt: str) -> None:
    sent = body(fmt)
    request = PARSERS[fmt](sent, whole=False)
    assert request.unread is not None and request.messages == [] and request.tools == []
    renamed = FORMATS[fmt].with_model(sent, "upstream-model", request.source)
    for written in CONVERSATIONS[fmt].values():  # each field's bytes as they were
        assert written in renamed
    expected = orjson.loads(sent)
    expected["model"] = "upstream-model"
    assert orjson.loads(renamed) == expected


@pytest.mark.parametrize("fmt", PARSERS)
def test_a_conversation_left_unread_reads_as_a_whole_read_of_it(fmt: str) -> None:
    later = read_conversation(PARSERS[fmt](body(fmt), whole=False))
    at_once = PARSERS[fmt](body(fmt))
    assert later.messages == at_once.messages and later.messages
    assert later.tools == at_once.tools and later.tools
    assert later.api_features == at_once.api_features
    assert (later.model, later.stream, later.max_tokens) == (at_once.model, at_once.stream, at_once.max_tokens)
    assert later.source == at_once.source  # what the cache key reads of the client's own body


BAD_BODIES = {
    "not JSON": lambda fmt: body(fmt)[:-1] + b",}",
    "cut short": lambda fmt: body(fmt)[:-40],
    "a stray comma in the conversation": lambda fmt: body(fmt).replace(b'"user"}', b'"user",}', 1),
    "not an object": lambda fmt: b"[" + body(fmt) + b"]",
    "nested deeper than a read goes": lambda fmt: body(
        fmt, conversation=b'"messages":[{"role":"user","content":' + b"[" * 5000 + b"]" * 5000 + b"}]"
    ),
    "no messages": lambda fmt: body(fmt, conversation=b'"messages":[ ]' if fmt == "openai" else b'"messages":{}'),
    "messages not an array": lambda fmt: body(fmt, conversation=b'"messages":"hi"'),
    "the model twice": lambda fmt: body(fmt)[:-1] + b',"model":"other"}',
    "a field beside the conversation of the wrong type": lambda fmt: body(fmt).replace(b"true", b'"yes"', 1),
    "a bad byte beside the conversation": lambda fmt: body(fmt)[:-1] + b',"metadata":{"user_id":"\xff"}}',
}


@pytest.mark.parametrize("fmt", PARSERS)
@pytest.mark.parametrize("case", BAD_BODIES)
def test_what_a_whole_read_refuses_is_refused_the_same_way_left_unread(fmt: str, case: str) -> None:
    sent = BAD_BODIES[case](fmt)
    whole = refusal(lambda: PARSERS[fmt](sent))
    assert refusal(lambda: PARSERS[fmt](sent, whole=False)) == whole


@pytest.mark.parametrize("fmt", PARSERS)
def test_a_bad_byte_in_the_conversation_is_refused_when_the_gateway_reads_it(fmt: str) -> None:
    """Left unread, the conversation's strings are the provider's to judge; read, they are refused."""
    sent = body(fmt).replace(b"hi \\u00e9", b"hi \xff", 1)
    request = PARSERS[fmt](sent, whole=False)
    message, _ = refusal(lambda: read_conversation(request))
    assert message == refusal(lambda: PARSERS[fmt](sent))[0] == "request body is not valid JSON"
