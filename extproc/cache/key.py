"""The cache key: who may share the entry, which route, and the request in canonical form.

The canonical request is what the client formats parse into, so the same
question asked through the OpenAI or the Anthropic API gives the same key.
Fields that do not change the answer (streaming, usage reporting, the
end-user id) are left out; the tenant (or client) scope comes first, so one
tenant's key can never equal another's.
"""

from __future__ import annotations

import dataclasses
import hashlib

import orjson

from extproc.formats.canonical import ChatRequest, EmbeddingRequest


def cache_key(scope: str, route: str, request: ChatRequest | EmbeddingRequest) -> str:
    if isinstance(request, ChatRequest):
        request = dataclasses.replace(request, stream=False, include_usage=False, user=None)
        kind = b"chat"
    else:
        kind = b"embeddings"
    digest = hashlib.sha256()
    for part in (scope.encode(), route.encode(), kind):
        digest.update(len(part).to_bytes(4, "big") + part)  # length-prefixed: no two splits hash alike
    digest.update(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()
