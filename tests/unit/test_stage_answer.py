"""AnswerStage driven alone with an Exchange and recorded provider answers: how each answer is asked
for (buffered or streamed), a translated answer in the client's format, a same-API answer passed
untouched but read for its usage, and a provider's (or Envoy's) error in the client's format."""

from __future__ import annotations

import orjson
import pytest

from extproc.contract import ATTEMPT_COUNT_HEADER, DROPPED_HEADER, OBSERVE_KEY, PROVIDER_HEADER
from extproc.observe.bodies import BodyLog
from extproc.pipeline import exchange as m
from extproc.pipeline.answer import AnswerStage
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.providers import provider_format
from tests.fakes.base import split_sse_events
from tests.support.exchanges import CHAT_PATH, MESSAGES_PATH, PROVIDERS, at_body, chat, messages, snapshot
from tests.support.fixtures import fixture_bytes, fixture_json

SNAPSHOT = snapshot(
    PROVIDERS
    + """
routes:
  - name: pooled
    model: "pool-*"
    pool: [{provider: openai}, {provider: anthropic, priority: 1, model: claude-backup}]
  - {model: "gpt-*", provider: openai}
  - {model: "claude-*", provider: anthropic}
"""
)
ANTHROPIC = {"anthropic-version": "2023-06-01"}
UNOBSERVED = snapshot(PROVIDERS + '\nroutes: [{model: "gpt-*", provider: openai}]\nextproc: {observe_streams: false}\n')


def routed(body: dict[str, object], path: str = CHAT_PATH, headers: dict[str, str] | None = None) -> Exchange:
    """A request as the translate stage leaves it for the answer: same API or not."""
    ex, _ = at_body(SNAPSHOT, body, path, headers)
    assert ex.target is not None and ex.endpoint is not None
    ex.passthrough = provider_format(ex.target.provider, ex.target.upstream_model) == ex.endpoint.format
    return ex


def answer_headers(ex: Exchange, status: int = 200, **headers: str) -> PhaseReply:
    reply = PhaseReply()
    AnswerStage().response_headers(ex, reply, {":status": str(status), **headers})
    return reply


def answer_body(ex: Exchange, chunk: bytes, end: bool = True) -> PhaseReply:
    reply = PhaseReply()
    AnswerStage().response_body(ex, reply, chunk, end)
    return reply


def streamed(ex: Exchange, body: bytes) -> list[PhaseReply]:
    """The answer's events one chunk each, the deferred reads run as the pass runs them."""
    events = split_sse_events(body)
    replies = []
    for index, event in enumerate(events):
        reply = answer_body(ex, event, end=index == len(events) - 1)
        if reply.after_reply is not None:
            reply.after_reply()
        replies.append(reply)
    return replies


# Asking for the answer


def test_a_same_api_whole_answer_is_buffered_to_be_read_and_left_as_it_is() -> None:
    ex = routed(chat("gpt-4o"))
    reply = answer_headers(ex, **{ATTEMPT_COUNT_HEADER: "2"})
    assert reply.response_body_mode == m.BUFFERED and reply.set_headers == [] and reply.remove_headers == []
    assert (ex.status, ex.provider_status, ex.attempts) == (200, 200, 2)


def test_a_same_api_stream_is_marked_for_the_observer_and_read_from_what_it_sends() -> None:
    ex = routed(chat("gpt-4o", stream=True))
    reply = answer_headers(ex)
    # No body asked for: Envoy sends it on as it comes, and the observer reads it under the key (the
    # router pass marks the answer for its worker's observer).
    assert reply.response_body_mode is None and reply.set_headers == []
    assert reply.request_metadata == {OBSERVE_KEY: ex.observed} and ex.observed > 0
    assert ex.decoder is not None and ex.assembler is not None and ex.encoder is None
    assert routed(chat("gpt-4o", stream=True)).observed == 0  # marked at the answer's headers only
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    pieces = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}},
    ]
    events = [b"data: " + orjson.dumps(piece) + b"\n\n" for piece in pieces] + [b"data: [DONE]\n\n"]
    ex.bodies = BodyLog()  # log_bodies
    for i, event in enumerate(events):
        assert not ex.answered
        AnswerStage().read_observed(ex, event, i == len(events) - 1)
    assert ex.answered and ex.usage is not None and (ex.usage.input_tokens, ex.usage.output_tokens) == (7, 5)
    assert ex.first_output > 0  # time to first token, from the chunk that carried text
    assert b"".join(ex.bodies.answer) == b"".join(events)  # the access line's answer, as the client got it


def test_a_same_api_stream_is_streamed_through_the_router_pass_when_not_observed() -> None:
    ex, _ = at_body(UNOBSERVED, chat("gpt-4o", stream=True), CHAT_PATH, None)
    ex.passthrough = True
    reply = answer_headers(ex)
    assert reply.response_body_mode == m.STREAMED and reply.set_headers == [] and not ex.observed
    assert ex.decoder is not None and ex.assembler is not None and ex.encoder is None


def test_a_same_api_stream_of_announced_length_is_whole_and_goes_through_the_router_pass() -> None:
    ex = routed(chat("gpt-4o", stream=True))
    reply = answer_headers(ex, **{"content-length": "2048"})
    assert reply.response_body_mode == m.STREAMED and reply.set_headers == [] and not ex.observed


def test_a_translated_stream_is_re_encoded_in_the_clients_stream_format() -> None:
    ex = routed(chat("claude-sonnet-4", stream=True))
    reply = answer_headers(ex)
    assert reply.response_body_mode == m.STREAMED and ex.encoder is not None
    assert dict(reply.set_headers)["content-type"].startswith("text/event-stream")
    assert reply.remove_headers == ["content-length"]  # the length changes with the format


def test_a_stream_made_from_a_whole_answer_is_buffered_and_sent_as_a_stream() -> None:
    ex = routed(chat("claude-sonnet-4", stream=True))
    ex.stream_from_whole = True
    reply = answer_headers(ex)
    assert reply.response_body_mode == m.BUFFERED
    assert dict(reply.set_headers)["content-type"].startswith("text/event-stream")


def test_dropped_features_are_named_to_the_client() -> None:
    ex = routed(chat("claude-sonnet-4"))
    ex.dropped = ["tools", "response_format"]
    assert (DROPPED_HEADER, "tools,response_format") in answer_headers(ex).set_headers


def test_a_pools_answer_is_read_as_the_provider_that_gave_it() -> None:
    ex = routed(chat("pool-1"))
    answer_headers(ex, **{PROVIDER_HEADER: "anthropic"})
    assert ex.answered_by is not None and ex.answered_by.name == "anthropic" and ex.provider_name == "anthropic"
    assert not ex.passthrough  # an Anthropic answer for an OpenAI client: translated


VERTEX_POOL = snapshot(
    PROVIDERS
    + """
  - {name: vx, kind: vertex, vertex: {project: p}}
routes:
  - name: vertex-pool
    model: "vpool-*"
    pool: [{provider: gemini, model: gemini-2.5-flash}, {provider: vx, priority: 1, model: claude-sonnet-4@20250514}]
"""
)


def test_a_pools_answer_from_claude_on_vertex_is_read_in_anthropics_format_for_the_member_model() -> None:
    ex, _ = at_body(VERTEX_POOL, messages("vpool-1"), MESSAGES_PATH)
    answer_headers(ex, **{PROVIDER_HEADER: "vx"})
    assert ex.provider_model == "claude-sonnet-4@20250514"
    assert ex.passthrough  # Claude on Vertex speaks the Anthropic client's API: its answer goes on as it is
    ex, _ = at_body(VERTEX_POOL, chat("vpool-1", n=2))
    answer_headers(ex, **{PROVIDER_HEADER: "vx"})
    assert not ex.passthrough and ex.dropped == ["n"]  # what Anthropic's format lacks, not Gemini's


# Reading and translating it


def test_a_translated_answer_is_in_the_clients_format_with_its_length() -> None:
    ex = routed(chat("claude-sonnet-4"))
    answer_headers(ex)
    reply = answer_body(ex, fixture_bytes("anthropic/message-basic.response.json"))
    assert reply.body is not None
    body = orjson.loads(reply.body)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert dict(reply.set_headers)["content-length"] == str(len(reply.body))
    assert ex.usage is not None and (ex.usage.input_tokens, ex.usage.output_tokens) == (20, 10)
    assert ex.answer is not None


def test_a_same_api_answer_goes_on_untouched_and_its_usage_is_read() -> None:
    usage = fixture_json("openai/chat-reasoning-tokens.response.json")["usage"]
    ex = routed(chat("gpt-4o"))
    answer_headers(ex)
    reply = answer_body(ex, fixture_bytes("openai/chat-reasoning-tokens.response.json"))
    assert reply.body is None  # untouched: only the cost is added, as a header
    # gpt-4o (2.5 input, 1.25 cached, 10 output): its reasoning is part of the output
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    fresh = usage["prompt_tokens"] - cached
    expected = (fresh * 2.5 + cached * 1.25 + usage["completion_tokens"] * 10) / 1e6
    ((name, value),) = reply.set_headers
    assert name == "x-gateway-cost-usd" and float(value) == pytest.approx(expected)
    assert ex.usage is not None and ex.usage.output_tokens == usage["completion_tokens"]
    assert ex.answer is not None  # complete: it may be cached


def test_a_same_api_answer_cut_short_is_a_502_in_the_clients_format() -> None:
    ex = routed(chat("gpt-4o"))
    answer_headers(ex)
    reply = answer_body(ex, b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"mess')
    assert dict(reply.set_headers)[":status"] == "502" and ex.status == 502
    error = orjson.loads(reply.body or b"{}")["error"]
    assert "cut short" in error["message"] and ex.usage is None


def test_a_same_api_stream_passes_unchanged_and_its_usage_is_read_after_each_reply() -> None:
    ex = routed(chat("gpt-4o", stream=True))
    answer_headers(ex)
    replies = streamed(ex, fixture_bytes("openai/chat-streaming-usage.response.sse"))
    assert all(reply.body is None for reply in replies)
    assert ex.usage is not None and (ex.usage.input_tokens, ex.usage.output_tokens) == (12, 100)
    assert ex.answer is not None


def test_a_translated_stream_reaches_the_client_in_its_own_events_and_ends_cleanly() -> None:
    ex = routed(messages("gpt-4o", stream=True), MESSAGES_PATH, ANTHROPIC)  # an Anthropic client, an OpenAI provider
    answer_headers(ex)
    replies = streamed(ex, fixture_bytes("openai/chat-streaming-usage.response.sse"))
    out = b"".join(reply.body or b"" for reply in replies)
    assert out.startswith(b"event: message_start") and out.rstrip().endswith(b'data: {"type":"message_stop"}')
    assert ex.usage is not None and ex.usage.output_tokens == 100


# Errors


def test_a_providers_error_is_answered_in_the_clients_format_with_its_status() -> None:
    ex = routed(chat("claude-sonnet-4"))
    reply = answer_headers(ex, 400)
    assert ex.error_body and reply.response_body_mode == m.BUFFERED
    reply = answer_body(ex, fixture_bytes("anthropic/error-400-invalid-request.response.json"))
    headers = dict(reply.set_headers)
    assert headers[":status"] == "400" and headers["content-type"] == "application/json"
    error = orjson.loads(reply.body or b"{}")["error"]
    assert error["type"] == "invalid_request_error" and "effort level" in error["message"]


def test_a_same_api_providers_error_is_already_in_the_clients_format() -> None:
    ex = routed(chat("gpt-4o"))
    answer_headers(ex, 400)
    assert answer_body(ex, fixture_bytes("openai/error-400-bad-request.response.json")).body is None


def test_the_provider_refusing_our_key_is_never_passed_through_as_the_clients_fault() -> None:
    ex = routed(chat("gpt-4o"))
    answer_headers(ex, 401)
    refused = b'{"error":{"message":"Incorrect API key provided: sk-prov****","type":"invalid_request_error"}}'
    reply = answer_body(ex, refused)
    assert reply.body is not None and b"sk-prov" not in reply.body
    assert int(dict(reply.set_headers)[":status"]) >= 500 and ex.status >= 500


@pytest.mark.parametrize(
    ("status", "text", "code"),
    [(503, b"no healthy upstream", "provider_unavailable"), (504, b"upstream request timeout", "provider_timeout")],
)
def test_envoys_own_plain_text_replies_are_errors_in_the_clients_format(status: int, text: bytes, code: str) -> None:
    ex = routed(chat("claude-sonnet-4"))
    answer_headers(ex, status)
    reply = answer_body(ex, text)
    error = orjson.loads(reply.body or b"{}")["error"]
    assert error["code"] == code and ex.request_id in error["message"]
    assert dict(reply.set_headers)[":status"] == str(status) == str(ex.status)
