"""Anthropic thinking and redacted_thinking served to OpenAI and Gemini clients (mapping.md):
OpenAI has no field for reasoning (dropped); Gemini gets thought parts with their thoughtSignature;
a redacted block's opaque data means nothing outside Anthropic and never reaches another format."""

from __future__ import annotations

import orjson

from extproc.formats import FORMATS, anthropic, gemini, openai
from extproc.formats.canonical import ChatRequest, Message, TextPart
from extproc.formats.endpoint import Endpoint
from extproc.formats.render_options import RenderOptions
from tests.support.fixtures import fixture_bytes, fixture_json

THINKING = "anthropic/message-thinking.response.json"
REDACTED_STREAM = "anthropic/stream-redacted-thinking.response.sse"
REQUEST = ChatRequest("m", [Message("user", [TextPart("hi")])], stream=True, include_usage=True)


def _redacted_data() -> list[str]:
    raw = fixture_bytes(REDACTED_STREAM).decode()
    return [line.split('"data":"')[1].split('"')[0] for line in raw.splitlines() if "redacted_thinking" in line]


def _translate_stream(client: str) -> bytes:
    decoder = anthropic.StreamDecoder()
    encoder = FORMATS[client].stream_encoder(REQUEST, Endpoint(client, "chat"))  # type: ignore[arg-type]
    return encoder.encode(decoder.feed(fixture_bytes(REDACTED_STREAM)) + decoder.close()) + encoder.close()


def test_openai_client_gets_the_answer_text_without_the_thinking() -> None:
    recorded = fixture_json(THINKING)["content"]
    body = openai.render_response(anthropic.parse_response(fixture_bytes(THINKING)))
    message = orjson.loads(body)["choices"][0]["message"]
    assert message["content"] == recorded[1]["text"]
    assert recorded[0]["signature"].encode() not in body and b"pedestrian safety" not in body


def test_gemini_client_gets_a_signed_thought_part_before_the_text() -> None:
    recorded = fixture_json(THINKING)["content"]
    body = orjson.loads(gemini.render_response(anthropic.parse_response(fixture_bytes(THINKING))))
    assert body["candidates"][0]["content"]["parts"] == [
        {"text": recorded[0]["thinking"], "thought": True, "thoughtSignature": recorded[0]["signature"]},
        {"text": recorded[1]["text"]},
    ]


def test_redacted_thinking_stream_reaches_openai_and_gemini_clients_as_text_only() -> None:
    data = _redacted_data()
    assert len(data) == 2
    for client in ("openai", "gemini"):
        body = _translate_stream(client)
        assert b"I notice that you've sent what" in body, client
        assert not any(d[:40].encode() in body for d in data), client
        assert b"thought" not in body, client  # no empty thought part or signature either


def test_anthropic_history_with_thinking_goes_upstream_as_each_provider_allows() -> None:
    history = {
        "model": "m",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "c2lnbmVk"},
                    {"type": "redacted_thinking", "data": "b3BhcXVl"},
                    {"type": "text", "text": "a"},
                ],
            },
            {"role": "user", "content": "again"},
        ],
    }
    req = anthropic.parse_request(orjson.dumps(history), None)
    options = RenderOptions(model="m")
    to_openai = orjson.loads(openai.render_request(req, options).body)
    assert to_openai["messages"][1] == {"role": "assistant", "content": "a"}
    to_gemini = orjson.loads(gemini.render_request(req, options).body)
    assert to_gemini["contents"][1]["parts"] == [
        {"text": "hmm", "thought": True, "thoughtSignature": "c2lnbmVk"},
        {"text": "a"},
    ]
    back = orjson.loads(anthropic.render_request(req, options).body)
    assert back["messages"][1]["content"] == history["messages"][1]["content"]
