"""The response cache through the real Envoy, with the official SDKs (memory store, one ext_proc).

Every hit is proven by the fake provider's request log: a hit never reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from google.genai import types

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.base import Reply, wait_until
from tests.fakes.openai import openai_error
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.sdk_outcomes import gemini_client
from tests.support.clients import keyed_clients
from tests.support.metrics import metric_sum, wait_settled
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

KEYS, CLIENTS = keyed_clients({"alice": "acme", "bob": "acme", "carol": "globex"})


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["clients"] = CLIENTS
    config["routes"] = [
        {"name": "short-lived", "model": "brief-*", "provider": "openai", "cache_ttl_s": 1},
        {"name": "uncached", "model": "never-*", "provider": "openai", "cache_ttl_s": 0},
        {"name": "shared", "model": "shared-*", "provider": "openai"},
        {"name": "claude-shared", "model": "claude-*", "provider": "anthropic"},
        *config["routes"],
    ]
    config["cache"] = {"chat_ttl_s": 600}
    config["limits"] = {
        "rules": [{"name": "two", "key": ["client"], "match": {"models": ["gpt-counted-*"]}, "requests": 2}]
    }
    stack = GatewayStack(Path(tmp_path_factory.mktemp("cache")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def _written_so_far(stack: GatewayStack) -> None:
    _written["bytes"] = metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"')


def oai(stack: GatewayStack, client: str = "alice") -> openai.OpenAI:
    return openai.OpenAI(api_key=KEYS[client], base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def ant(stack: GatewayStack, client: str = "alice") -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=KEYS[client], base_url=stack.base_url, max_retries=0, timeout=20)


def ask(
    stack: GatewayStack, model: str, text: str, client: str = "alice", headers: dict[str, str] | None = None
) -> tuple[str, httpx.Headers]:
    raw = oai(stack, client).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=50, extra_headers=headers
    )
    return raw.parse().choices[0].message.content or "", raw.headers


_written = {"bytes": 0.0}


def stored(stack: GatewayStack, written: bool = True) -> None:
    """Until the entry the last answer made is written (it is, once the ext_proc closed the
    request's stream); `written=False`: until whatever the requests wrote is done, where the
    cache is expected to have been left alone."""
    if not written:
        wait_settled(stack)
        return
    before = _written["bytes"]
    assert wait_until(lambda: metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"') > before, timeout=10)
    _written["bytes"] = metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"')


def test_the_same_question_twice_is_answered_from_the_cache_without_the_provider(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    text, headers = ask(stack, "gpt-4o-mini", "what is a cache?")
    assert headers["x-gateway-cache"] == "MISS"
    stored(stack)
    again, headers = ask(stack, "gpt-4o-mini", "what is a cache?")
    assert headers["x-gateway-cache"] == "HIT"
    assert again == text
    assert len(fake_openai.requests) == 1
    other, headers = ask(stack, "gpt-4o-mini", "what is a different question?")
    assert headers["x-gateway-cache"] == "MISS" and other != text
    assert len(fake_openai.requests) == 2


def test_a_question_asked_through_openai_hits_when_asked_again_through_anthropic(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    text, _ = ask(stack, "shared-model", "one entry for every API")
    stored(stack)
    raw = ant(stack).messages.with_raw_response.create(
        model="shared-model", max_tokens=50, messages=[{"role": "user", "content": "one entry for every API"}]
    )
    message = raw.parse()
    assert raw.headers["x-gateway-cache"] == "HIT"
    assert message.type == "message" and message.content[0].type == "text"
    assert message.content[0].text == text
    assert message.stop_reason == "end_turn"
    assert len(fake_openai.requests) == 1


def test_a_question_asked_through_chat_completions_hits_when_asked_through_the_responses_api(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    text, _ = ask(stack, "shared-model", "one entry for chat and responses")
    stored(stack)
    raw = oai(stack).responses.with_raw_response.create(
        model="shared-model", input="one entry for chat and responses", max_output_tokens=50
    )
    assert raw.headers["x-gateway-cache"] == "HIT"
    assert raw.parse().output_text == text and raw.parse().status == "completed"
    events = list(
        oai(stack).responses.create(
            model="shared-model", input="one entry for chat and responses", max_output_tokens=50, stream=True
        )
    )
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == text  # type: ignore[union-attr]
    assert events[-1].type == "response.completed"
    assert len(fake_openai.requests) == 1


def test_a_responses_stream_passed_through_is_stored_and_answers_a_chat_client(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    events = list(
        oai(stack).responses.create(model="shared-model", input="stream it once", max_output_tokens=50, stream=True)
    )
    assert fake_openai.last_request.path == "/v1/responses"
    streamed = events[-1].response.output_text  # type: ignore[union-attr]
    stored(stack)
    again, headers = ask(stack, "shared-model", "stream it once")
    assert headers["x-gateway-cache"] == "HIT" and again == streamed
    assert len(fake_openai.requests) == 1


def test_a_responses_request_the_canonical_model_cannot_hold_whole_is_never_cached(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    for previous in ("resp_first", "resp_second"):  # two conversations, one new question
        raw = oai(stack).responses.with_raw_response.create(
            model="shared-model", input="and then?", previous_response_id=previous, max_output_tokens=50
        )
        assert raw.headers["x-gateway-cache"] == "BYPASS"
        assert fake_openai.last_request.json["previous_response_id"] == previous
    assert len(fake_openai.requests) == 2


def test_a_token_count_is_never_answered_from_the_cache(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    ask(stack, "shared-model", "count or answer?")
    stored(stack)
    for _ in range(2):
        raw = oai(stack).responses.input_tokens.with_raw_response.count(model="shared-model", input="count or answer?")
        assert "x-gateway-cache" not in raw.headers and raw.parse().input_tokens > 0
    assert [r.path for r in fake_openai.requests] == ["/v1/chat/completions", *["/v1/responses/input_tokens"] * 2]


def test_a_cached_answer_replays_as_a_stream_through_each_sdk(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    text, _ = ask(stack, "shared-model", "replay me as a stream")
    stored(stack)
    chunks = list(
        oai(stack).chat.completions.create(
            model="shared-model",
            messages=[{"role": "user", "content": "replay me as a stream"}],
            max_tokens=50,
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    with ant(stack).messages.stream(
        model="shared-model", max_tokens=50, messages=[{"role": "user", "content": "replay me as a stream"}]
    ) as stream:
        assert "".join(stream.text_stream) == text
        assert stream.get_final_message().stop_reason == "end_turn"
    gemini = gemini_client(stack.base_url, KEYS["alice"])
    pieces = list(
        gemini.models.generate_content_stream(
            model="shared-model",
            contents="replay me as a stream",
            config=types.GenerateContentConfig(max_output_tokens=50),
        )
    )
    assert "".join(piece.text or "" for piece in pieces) == text
    assert pieces[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert len(fake_openai.requests) == 1


def test_a_complete_stream_is_stored_and_answers_the_next_request(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    with ant(stack).messages.stream(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "stream then cache"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
    stored(stack)
    message = ant(stack).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "stream then cache"}]
    )
    assert message.content[0].text == streamed
    assert len(fake_anthropic.requests) == 1


def test_a_replayed_stream_comes_in_the_pieces_it_was_first_streamed_in(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    question = [{"role": "user", "content": "replay me piece by piece"}]
    with ant(stack).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=question) as stream:
        first = list(stream.text_stream)
    assert len(first) > 1  # the provider streamed several deltas
    stored(stack)
    replay = oai(stack).chat.completions.create(
        model="claude-sonnet-4-5", messages=question, max_tokens=50, stream=True
    )
    pieces = [c.choices[0].delta.content for c in replay if c.choices and c.choices[0].delta.content]
    assert pieces == first
    assert len(fake_anthropic.requests) == 1


def test_a_stream_cut_short_by_the_provider_is_not_stored(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    chunk = (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"part"},"finish_reason":null}]}\n\n'
    )
    fake_openai.enqueue(Reply(content_type="text/event-stream", chunks=[chunk] * 4, abort_after_chunks=3))
    with pytest.raises(openai.APIError):
        list(
            oai(stack).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "cut"}], max_tokens=50, stream=True
            )
        )
    stored(stack, written=False)
    _, headers = ask(stack, "gpt-4o-mini", "cut")
    assert headers["x-gateway-cache"] == "MISS"
    assert len(fake_openai.requests) == 2


def test_errors_are_never_stored(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(openai_error(500, "the provider broke", type_="server_error"))
    with pytest.raises(openai.InternalServerError):
        ask(stack, "gpt-4o-mini", "fail once")
    stored(stack, written=False)
    _, headers = ask(stack, "gpt-4o-mini", "fail once")
    assert headers["x-gateway-cache"] == "MISS"
    assert len(fake_openai.requests) == 2


def test_one_tenant_never_reads_another_tenants_entry(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    ask(stack, "gpt-4o-mini", "tenant secret question", client="alice")
    stored(stack)
    _, headers = ask(stack, "gpt-4o-mini", "tenant secret question", client="carol")
    assert headers["x-gateway-cache"] == "MISS"  # globex asks the provider itself
    assert len(fake_openai.requests) == 2
    _, headers = ask(stack, "gpt-4o-mini", "tenant secret question", client="bob")
    assert headers["x-gateway-cache"] == "HIT"  # bob is in alice's tenant
    assert len(fake_openai.requests) == 2


def test_cache_control_no_store_no_cache_and_max_age_are_followed(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    _, headers = ask(stack, "gpt-4o-mini", "directives", headers={"cache-control": "no-store"})
    assert headers["x-gateway-cache"] == "BYPASS"
    stored(stack, written=False)
    _, headers = ask(stack, "gpt-4o-mini", "directives")
    assert headers["x-gateway-cache"] == "MISS"  # no-store wrote nothing
    stored(stack)
    _, headers = ask(stack, "gpt-4o-mini", "directives", headers={"cache-control": "no-cache"})
    assert headers["x-gateway-cache"] == "REFRESH"
    assert len(fake_openai.requests) == 3
    stored(stack)
    _, headers = ask(stack, "gpt-4o-mini", "directives", headers={"cache-control": "max-age=0"})
    assert headers["x-gateway-cache"] == "REFRESH"
    stored(stack)
    _, headers = ask(stack, "gpt-4o-mini", "directives", headers={"cache-control": "max-age=60"})
    assert headers["x-gateway-cache"] == "HIT"
    assert len(fake_openai.requests) == 4


def test_route_ttls_expire_entries_and_a_zero_ttl_never_caches(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    ask(stack, "brief-1", "short memory")
    stored(stack)
    assert ask(stack, "brief-1", "short memory")[1]["x-gateway-cache"] == "HIT"
    # Hits until the route's 1 s TTL is over; then the provider is asked again.
    assert wait_until(lambda: ask(stack, "brief-1", "short memory")[1]["x-gateway-cache"] == "MISS", 5, 0.1)
    assert ask(stack, "never-1", "no memory")[1]["x-gateway-cache"] == "BYPASS"
    stored(stack, written=False)
    assert ask(stack, "never-1", "no memory")[1]["x-gateway-cache"] == "BYPASS"
    assert len(fake_openai.requests) == 4


def test_a_hit_costs_no_provider_call_but_counts_against_request_limits(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    ask(stack, "gpt-counted-1", "count me", client="carol")
    stored(stack)
    _, headers = ask(stack, "gpt-counted-1", "count me", client="carol")
    assert headers["x-gateway-cache"] == "HIT" and headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError):
        ask(stack, "gpt-counted-1", "count me", client="carol")
    assert len(fake_openai.requests) == 1


def test_embeddings_are_cached_too(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    client = oai(stack)
    first = client.embeddings.with_raw_response.create(model="gpt-embedding-1", input=["cache me"])
    assert first.headers["x-gateway-cache"] == "MISS"
    stored(stack)
    second = client.embeddings.with_raw_response.create(model="gpt-embedding-1", input=["cache me"])
    assert second.headers["x-gateway-cache"] == "HIT"
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    assert len(fake_openai.requests) == 1


def test_cache_outcomes_and_bytes_are_counted(stack: GatewayStack) -> None:
    hits, misses = (
        metric_sum(stack, "gateway_cache_requests_total", 'result="hit"'),
        metric_sum(stack, "gateway_cache_requests_total", 'result="miss"'),
    )
    stored_bytes = metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"')
    ask(stack, "gpt-4o-mini", "count the cache")
    stored(stack)
    ask(stack, "gpt-4o-mini", "count the cache")
    assert metric_sum(stack, "gateway_cache_requests_total", 'result="miss"') == misses + 1
    assert metric_sum(stack, "gateway_cache_requests_total", 'result="hit"') == hits + 1
    assert metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"') > stored_bytes
    assert metric_sum(stack, "gateway_cache_bytes_total", 'op="served"') > 0
