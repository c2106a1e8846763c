"""The cache's key, entry codec and Cache-Control directives."""

from __future__ import annotations

import orjson

from extproc.cache import codec
from extproc.cache.control import parse
from extproc.cache.key import Forwarded, cache_key
from extproc.formats import anthropic, gemini, openai
from extproc.formats.canonical import (
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    ThinkingPart,
    ToolCall,
    Usage,
)

QUESTION = "What is the capital of France?"
NOWHERE = Forwarded()


def _openai(**extra: object) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": QUESTION}], **extra})


def test_the_same_question_through_openai_anthropic_and_gemini_gives_one_key() -> None:
    from_openai = openai.parse_request(_openai())
    from_anthropic = anthropic.parse_request(
        orjson.dumps({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": QUESTION}]})
    )
    from_gemini = gemini.parse_request(
        orjson.dumps(
            {"contents": [{"role": "user", "parts": [{"text": QUESTION}]}], "generationConfig": {"maxOutputTokens": 64}}
        ),
        "m",
    )
    key = cache_key("tenant:acme", "route", from_openai, NOWHERE)
    assert cache_key("tenant:acme", "route", from_anthropic, NOWHERE) == key
    assert cache_key("tenant:acme", "route", from_gemini, NOWHERE) == key


def test_streaming_usage_reporting_and_the_end_user_id_do_not_change_the_key() -> None:
    plain = cache_key("tenant:a", "r", openai.parse_request(_openai()), NOWHERE)
    streamed = openai.parse_request(_openai(stream=True, stream_options={"include_usage": True}, user="u-1"))
    assert cache_key("tenant:a", "r", streamed, NOWHERE) == plain


def test_scope_route_and_every_answer_changing_field_change_the_key() -> None:
    request = openai.parse_request(_openai())
    key = cache_key("tenant:a", "r", request, NOWHERE)
    assert cache_key("tenant:b", "r", request, NOWHERE) != key
    assert cache_key("tenant:a", "r2", request, NOWHERE) != key
    assert cache_key("tenant:a", "r", openai.parse_request(_openai(temperature=0.5)), NOWHERE) != key
    assert cache_key("tenant:a", "r", openai.parse_request(_openai(max_tokens=65)), NOWHERE) != key
    # Length-prefixed parts: moving a character between scope and route is another key.
    assert cache_key("tenant:ab", "c", request, NOWHERE) != cache_key("tenant:a", "bc", request, NOWHERE)


def test_chat_and_embedding_answers_survive_the_codec_whole() -> None:
    chat = ChatResponse(
        "id-1",
        "model-1",
        1700000000,
        [
            Choice(
                0,
                "answer",
                [ThinkingPart("thought", "sig"), ThinkingPart("", "opaque", redacted=True)],
                [ToolCall("call_1", "fn", '{"a":1}', "gem-sig")],
                "tool_calls",
            ),
            Choice(1, "second", finish_reason="length", refusal=None, pieces=[2, 4]),
        ],
        Usage(10, 20, cached_tokens=3, reasoning_tokens=5),
    )
    assert codec.decode(codec.encode(chat)) == chat
    embedding = EmbeddingResponse("e-model", [[0.5, -1.0], [0.25, 0.0]], Usage(4))
    assert codec.decode(codec.encode(embedding)) == embedding


def test_an_entry_stored_before_pieces_were_kept_still_reads() -> None:
    older = codec.encode(ChatResponse("id", "m", 1, [Choice(0, "hi", finish_reason="stop")]))
    raw = orjson.loads(older[1:])
    del raw["choices"][0]["pieces"]
    assert codec.decode(b"c" + orjson.dumps(raw)).choices[0] == Choice(0, "hi", finish_reason="stop")


def test_an_entry_the_codec_did_not_write_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        codec.decode(b"x{}")


def test_embedding_requests_key_on_their_inputs() -> None:
    one = cache_key("t", "r", EmbeddingRequest("m", ["a"]), NOWHERE)
    assert one == cache_key("t", "r", EmbeddingRequest("m", ["a"]), NOWHERE)
    assert one != cache_key("t", "r", EmbeddingRequest("m", ["b"]), NOWHERE)
    assert one != cache_key("t", "r", EmbeddingRequest("m", ["a"], dimensions=8), NOWHERE)


def test_cache_control_directives() -> None:
    assert parse("") == parse("public")
    assert parse("no-store").no_store
    assert parse("No-Cache").no_cache
    assert parse("max-age=30").max_age_s == 30 and not parse("max-age=30").no_cache
    assert parse("max-age=0").no_cache  # nothing stored is fresh enough: a refresh
    assert parse('max-age="10", no-store').no_store
    assert parse("max-age=abc").max_age_s is None
