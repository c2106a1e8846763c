"""CacheStage driven alone with an Exchange, on the embedded store: a miss is stored once its answer
completed, the same question is then answered here in the asker's format, Cache-Control and the
route's TTL are followed, and a store that cannot be reached means the cache is bypassed.

What exactly the key covers is tested with the key itself (tests/unit/test_cache_key.py,
tests/unit/test_cache_units.py) and through the real Envoy (tests/integration/test_cache_key.py,
tests/integration/test_cache.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from extproc.auth.identity import Identity
from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest, ChatResponse, Tool
from extproc.observe.metrics import CACHE_LOOKUPS
from extproc.pipeline import cache as cache_module
from extproc.pipeline.cache import CacheStage
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.state import Snapshot
from extproc.store.base import StoreError
from extproc.store.memory import MemoryStore
from tests.support.exchanges import MESSAGES_PATH, PROVIDERS, at_body, chat, snapshot
from tests.support.metrics import pending_writes_here
from tests.support.wait import wait_until_async

CACHED = snapshot(
    PROVIDERS
    + """
routes:
  - {model: "brief-*", provider: openai, cache_ttl_s: 10}
  - {model: "never-*", provider: openai, cache_ttl_s: 0}
  - {model: "gpt-*", provider: openai}
cache: {}
"""
)
ALICE = Identity("alice", "acme", method="api_key")
BOB = Identity("bob", "acme", method="api_key")  # alice's tenant
CAROL = Identity("carol", "globex", method="api_key")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider_answer(text: str) -> ChatResponse:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    return FORMATS["openai"].parse_response(orjson.dumps(body))


class Cache:
    """The stage on one store, and a request through it as the pass would make it."""

    def __init__(self, snap: Snapshot = CACHED) -> None:
        self.clock = Clock()
        self.store = MemoryStore(100, 1 << 20, clock=self.clock)
        self.stage = CacheStage(self.store)
        self.snap = snap

    def ask(
        self, model: str = "gpt-4o", identity: Identity = ALICE, headers: dict[str, str] | None = None, **fields: Any
    ) -> tuple[Exchange, LocalAnswer | None]:
        ex, raw = at_body(self.snap, chat(model, "what is a cache?", **fields), headers=headers, identity=identity)
        return ex, asyncio.run(self.stage.request_body(ex, PhaseReply(), raw))

    def finish(self, ex: Exchange, answer: ChatResponse | None, status: int = 200) -> None:
        ex.answer, ex.status, ex.answered = answer, status, True

        async def stored() -> None:
            before = pending_writes_here()
            self.stage.finish(ex)
            assert await wait_until_async(lambda: pending_writes_here() == before)  # the entry is written after

        asyncio.run(stored())


def test_a_miss_is_marked_and_keyed_and_its_answer_says_so() -> None:
    cache = Cache()
    ex, answer = cache.ask()
    assert answer is None and ex.cache_status == "MISS" and ex.cache_key and ex.cache_ttl_s == 300
    reply = PhaseReply()
    cache.stage.response_headers(ex, reply, {":status": "200"})
    assert reply.set_headers == [("x-gateway-cache", "MISS")]


def test_a_completed_answer_is_stored_and_the_same_question_is_answered_from_the_cache() -> None:
    cache = Cache()
    miss, _ = cache.ask()
    cache.finish(miss, provider_answer("a cache keeps answers"))
    cache.clock.now += 7
    hit, answer = cache.ask(identity=BOB)  # the same tenant shares entries
    assert answer is not None and answer.status == 200 and hit.cache_status == "HIT"
    headers = dict(answer.headers)
    assert headers["x-gateway-cache"] == "HIT" and headers["age"] == "7"
    body = orjson.loads(answer.body)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "a cache keeps answers"


def test_a_hit_is_replayed_as_a_stream_to_a_client_that_streams() -> None:
    cache = Cache()
    miss, _ = cache.ask()
    cache.finish(miss, provider_answer("streamed from the cache"))
    _, answer = cache.ask(stream=True)
    assert answer is not None and dict(answer.headers)["content-type"].startswith("text/event-stream")
    assert b"streamed" in answer.body and answer.body.rstrip().endswith(b"data: [DONE]")


def test_another_tenant_never_gets_the_entry() -> None:
    cache = Cache()
    miss, _ = cache.ask()
    cache.finish(miss, provider_answer("acme's answer"))
    ex, answer = cache.ask(identity=CAROL)
    assert answer is None and ex.cache_status == "MISS"


def test_errors_and_unfinished_answers_are_never_stored() -> None:
    cache = Cache()
    failed, _ = cache.ask()
    cache.finish(failed, provider_answer("an error's body"), status=502)
    cut, _ = cache.ask()
    cache.finish(cut, None)  # a stream cut short: no complete answer
    ex, answer = cache.ask()
    assert answer is None and ex.cache_status == "MISS"


def test_no_store_neither_reads_nor_writes() -> None:
    cache = Cache()
    miss, _ = cache.ask()
    cache.finish(miss, provider_answer("kept"))
    ex, answer = cache.ask(headers={"cache-control": "no-store"})
    assert answer is None and ex.cache_status == "BYPASS" and not ex.cache_key


def test_no_cache_asks_the_provider_and_stores_the_fresh_answer() -> None:
    cache = Cache()
    miss, _ = cache.ask()
    cache.finish(miss, provider_answer("old"))
    refresh, answer = cache.ask(headers={"cache-control": "no-cache"})
    assert answer is None and refresh.cache_status == "REFRESH" and refresh.cache_key
    cache.finish(refresh, provider_answer("new"))
    _, answer = cache.ask()
    assert answer is not None and orjson.loads(answer.body)["choices"][0]["message"]["content"] == "new"


def test_max_age_accepts_only_entries_that_young() -> None:
    cache = Cache()
    miss, _ = cache.ask()
    cache.finish(miss, provider_answer("ten seconds old"))
    cache.clock.now += 10
    too_old, answer = cache.ask(headers={"cache-control": "max-age=5"})
    assert answer is None and too_old.cache_status == "MISS"
    _, answer = cache.ask(headers={"cache-control": "max-age=60"})
    assert answer is not None


def test_the_routes_ttl_is_the_entrys_life_and_a_zero_ttl_never_caches() -> None:
    cache = Cache()
    miss, _ = cache.ask("brief-1")
    assert miss.cache_ttl_s == 10
    cache.finish(miss, provider_answer("short-lived"))
    cache.clock.now += 11
    expired, answer = cache.ask("brief-1")
    assert answer is None and expired.cache_status == "MISS"
    never, _ = cache.ask("never-1")
    assert never.cache_status == "BYPASS" and not never.cache_key


def test_without_a_cache_section_the_stage_does_nothing() -> None:
    cache = Cache(snapshot())
    ex, answer = cache.ask()
    assert answer is None and ex.cache_status == "" and not ex.cache_key
    reply = PhaseReply()
    cache.stage.response_headers(ex, reply, {":status": "200"})
    assert reply.set_headers == []


class Unreachable(MemoryStore):
    def __init__(self) -> None:
        super().__init__(100, 1 << 20)

    async def cache_get(self, key: str) -> Any:
        raise StoreError("redis went away")


def test_a_store_that_cannot_be_reached_means_the_request_bypasses_the_cache() -> None:
    ex, raw = at_body(CACHED, chat("gpt-4o"), identity=ALICE)
    assert asyncio.run(CacheStage(Unreachable()).request_body(ex, PhaseReply(), raw)) is None
    assert ex.cache_status == "BYPASS" and not ex.cache_key  # nothing is written either


def test_a_request_whose_key_cannot_be_computed_bypasses_the_cache_and_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fails(*args: object) -> str:
        raise TypeError("cannot write this")

    monkeypatch.setattr(cache_module, "cache_key", fails)
    bypassed = CACHE_LOOKUPS.labels("bypass")._value.get()
    ex, answer = Cache().ask()
    assert answer is None and ex.cache_status == "BYPASS" and not ex.cache_key  # nothing is written either
    assert CACHE_LOOKUPS.labels("bypass")._value.get() == bypassed + 1


def test_a_schema_deeper_than_the_key_can_be_written_bypasses_the_cache() -> None:
    """orjson reads 1024 levels but writes 254: such a request is answered by its provider, never a 500."""
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"inner": schema}}
    ex, raw = at_body(CACHED, chat("gpt-4o"), identity=ALICE)
    assert isinstance(ex.request, ChatRequest)
    ex.request.tools = [Tool("deep", None, schema)]  # as a parser with no nesting bound would read it
    assert asyncio.run(Cache().stage.request_body(ex, PhaseReply(), raw)) is None
    assert ex.cache_status == "BYPASS" and not ex.cache_key


def test_a_request_for_answer_parts_an_entry_cannot_hold_is_neither_looked_up_nor_stored() -> None:
    ex, answer = Cache().ask(logprobs=True, top_logprobs=2)
    assert answer is None and ex.cache_status == "BYPASS" and not ex.cache_key


def test_a_same_api_request_is_keyed_on_its_own_fields() -> None:
    cache = Cache()
    plain, _ = cache.ask()
    named, _ = cache.ask(messages=[{"role": "user", "content": "what is a cache?", "name": "alice"}])
    assert plain.cache_status == named.cache_status == "MISS" and plain.cache_key != named.cache_key
    assert isinstance(named.request, ChatRequest)
    beta, _ = cache.ask(headers={"openai-beta": "assistants=v2"})
    assert beta.cache_key not in (plain.cache_key, named.cache_key)
    # An Anthropic client, its request rendered for OpenAI: the same request reaches the provider.
    body = {"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "what is a cache?"}]}
    plain_50, _ = cache.ask(max_tokens=50)
    translated, raw = at_body(CACHED, body, MESSAGES_PATH, identity=ALICE)
    asyncio.run(cache.stage.request_body(translated, PhaseReply(), raw))
    assert translated.cache_key == plain_50.cache_key
