"""The cache key: who may share the entry, which route, who answers, and the request as the
provider gets it.

The request is keyed in canonical form, so the same question asked through the OpenAI,
Anthropic or Gemini API shares an entry wherever the provider is sent the same request. What
the canonical form does not say is keyed beside it (`Forwarded`): the providers and models that
may answer, the protocol headers a provider of the client's own API is sent, and the members of
the client's own body and query that such a provider gets but the canonical request does not carry.
Fields that do not change the answer (streaming, usage reporting, the end-user id) are left
out; the tenant (or client) scope comes first, so one tenant's key can never equal another's.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import orjson

from extproc.formats.canonical import ChatRequest, EmbeddingRequest
from extproc.formats.carried import Uncarried


@dataclass(slots=True)
class Forwarded:
    """What reaches the provider besides the canonical request."""

    answerers: tuple[tuple[str, str], ...] = ()  # (provider, model) of each that may answer
    headers: tuple[tuple[str, str], ...] = ()  # protocol headers sent on that can change the answer
    uncarried: Uncarried = dataclasses.field(default_factory=list)  # the client's own members sent on
    query: str = ""  # the client's query string sent on
    # Not keyed: False when the request asks for answer parts a canonical entry cannot hold (log
    # probabilities, audio): such a request is never answered from the cache nor stored.
    replayable: bool = True


def cache_key(scope: str, route: str, request: ChatRequest | EmbeddingRequest, forwarded: Forwarded) -> str:
    """Raises (orjson.JSONEncodeError, ...) when a part cannot be written: the caller bypasses the cache."""
    if isinstance(request, ChatRequest):
        request = dataclasses.replace(request, stream=False, include_usage=False, user=None, source=None)
        kind = b"chat"
    else:
        kind = b"embeddings"
    beside = orjson.dumps(
        [forwarded.answerers, forwarded.headers, forwarded.query, forwarded.uncarried], option=orjson.OPT_SORT_KEYS
    )
    digest = hashlib.sha256()
    for part in (scope.encode(), route.encode(), kind, beside):
        digest.update(len(part).to_bytes(4, "big") + part)  # length-prefixed: no two splits hash alike
    digest.update(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()
