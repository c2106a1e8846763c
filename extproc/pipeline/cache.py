"""Stage: the response cache. A hit is answered here, in the asker's format, before the request
goes to any provider; a miss is stored once its answer completed.

Keys are scoped by tenant (or client) and route, and name who may answer and
the request as that provider gets it (`extproc.cache.key`); entries are
canonical answers (`extproc.cache.codec`), so one entry serves every client
API, as a whole answer or replayed as a stream. Errors and incomplete streams
are never stored. A store that cannot be reached, or a request whose key
cannot be computed, means the request bypasses the cache.
"""

from __future__ import annotations

import logging
from typing import Any

from extproc.cache import codec, control
from extproc.cache.forwarded import forwarded
from extproc.cache.key import Forwarded, cache_key
from extproc.config.model import Provider
from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, read_conversation
from extproc.formats.client_answer import render_answer
from extproc.formats.shared_wire import CONTENT_TYPE_JSON
from extproc.observe.metrics import CACHE_BYTES, CACHE_LOOKUPS, labelled
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.spend import cost_header, request_cost
from extproc.pipeline.stage import Stage
from extproc.store import background
from extproc.store.base import Store, StoreError

CACHE_HEADER = "x-gateway-cache"
log = logging.getLogger(__name__)


class CacheStage(Stage):
    name = "cache"

    def __init__(self, store: Store) -> None:
        self._store = store

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        settings = ex.snapshot.config.cache
        target, request = ex.target, ex.request
        source = request.source if isinstance(request, ChatRequest) else None
        if not settings.enabled or target is None or request is None or _not_an_answer(ex):
            return None
        ttl_s = _ttl(ex)
        directives = control.parse(ex.headers.get("cache-control", ""))
        if ttl_s <= 0 or directives.no_store:
            self._outcome(ex, "BYPASS")
            return None
        if isinstance(request, ChatRequest):
            read_conversation(request)  # the key holds the conversation (read already where a key is made)
        scope = ex.identity.tenant if settings.scope == "tenant" else ex.identity.client_id
        try:
            sent = self._forwarded(ex, source)
            key = cache_key(f"{settings.scope}:{scope}", target.route, request, sent) if sent.replayable else ""
        except Exception as error:  # too deep to write, say: answered by the provider, never a 500
            log.warning("no cache key for this request (%s): the cache is bypassed", error.__class__.__name__)
            key = ""
        if not key:  # or its answer has parts a canonical entry cannot hold (log probabilities, audio)
            self._outcome(ex, "BYPASS")
            return None
        if directives.no_cache:
            ex.cache_key, ex.cache_ttl_s = key, ttl_s
            self._outcome(ex, "REFRESH")
            return None
        try:
            entry = await self._store.cache_get(key)
        except StoreError as error:
            background.failed("cache", error)
            self._outcome(ex, "BYPASS")
            return None
        background.succeeded()
        if entry is not None and (directives.max_age_s is None or entry.age_s <= directives.max_age_s):
            try:
                return self._hit(ex, codec.decode_entry(entry.value), entry.age_s, len(entry.value))
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable cache entry; answering from the provider")
        ex.cache_key, ex.cache_ttl_s = key, ttl_s
        self._outcome(ex, "MISS")
        return None

    def _forwarded(self, ex: Exchange, source: dict[str, Any] | None) -> Forwarded:
        target, endpoint = ex.target, ex.endpoint
        assert target is not None and endpoint is not None
        answerers: list[tuple[Provider, str]] = [(target.provider, target.upstream_model)]
        if target.pooled:  # any member may answer
            config = ex.snapshot.config
            answerers = [
                (_member(config.provider(m.provider)), target.model_for(m.provider, ex.model)) for m in target.pool
            ]
        features = ex.request.api_features if isinstance(ex.request, ChatRequest) else None
        return forwarded(endpoint.format, answerers, ex.headers, source, ex.path, features)

    def _hit(self, ex: Exchange, entry: codec.Entry, age_s: float, size: int) -> LocalAnswer:
        endpoint, request, answer = ex.endpoint, ex.request, entry.answer
        assert endpoint is not None
        client = FORMATS[endpoint.format]
        content_type = CONTENT_TYPE_JSON
        if isinstance(request, EmbeddingRequest) and isinstance(answer, EmbeddingResponse):
            body = client.render_embedding_response(answer, request, endpoint)
        elif isinstance(request, ChatRequest) and isinstance(answer, ChatResponse):
            body, content_type = render_answer(client, endpoint, request, answer, ex.stream)
        else:
            raise ValueError("a cache entry of another request type")
        self._outcome(ex, "HIT")
        ex.saved_usd = entry.cost_usd
        labelled(CACHE_BYTES, "served").inc(size)
        headers = [("content-type", content_type), (CACHE_HEADER, "HIT"), ("age", str(int(age_s)))]
        if not ex.stream:
            headers.append(cost_header(request_cost(ex)))  # 0: no provider was asked
        return LocalAnswer(200, body, headers)

    def _outcome(self, ex: Exchange, status: str) -> None:
        ex.cache_status = status
        labelled(CACHE_LOOKUPS, status.lower()).inc()

    def response_headers(self, ex: Exchange, reply: PhaseReply, headers: dict[str, str]) -> None:
        if ex.cache_status:
            reply.set_headers.append((CACHE_HEADER, ex.cache_status))

    def finish(self, ex: Exchange) -> None:
        if not ex.cache_key or ex.answer is None or ex.status != 200:
            return  # only complete, successful answers
        value = codec.encode(ex.answer, request_cost(ex).usd)
        if len(value) > ex.snapshot.config.cache.max_entry_bytes:
            return
        background.spawn("cache", self._store_entry(ex.cache_key, value, ex.cache_ttl_s))

    async def _store_entry(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._store.cache_set(key, value, ttl_s)
        labelled(CACHE_BYTES, "stored").inc(len(value))


def _member(provider: Provider | None) -> Provider:
    assert provider is not None  # a pool's members are checked at load
    return provider


def may_cache(ex: Exchange) -> bool:
    """Whether the cache could key this request (its answer could be stored or served)."""
    return ex.snapshot.config.cache.enabled and ex.target is not None and not _not_an_answer(ex) and _ttl(ex) > 0


def _ttl(ex: Exchange) -> float:
    """The route's TTL, else the provider's, else the default for the request type."""
    target = ex.target
    assert target is not None
    if target.cache_ttl_s is not None:
        return target.cache_ttl_s
    if target.provider.cache_ttl_s is not None:
        return target.provider.cache_ttl_s
    settings = ex.snapshot.config.cache
    return settings.embeddings_ttl_s if isinstance(ex.request, EmbeddingRequest) else settings.chat_ttl_s


def _not_an_answer(ex: Exchange) -> bool:
    """A token count is not an answer to the request it counts: never stored, never served from it."""
    return ex.endpoint is not None and ex.endpoint.operation == "count_tokens"
