"""What a request will cost in tokens, before any provider counted it.

Reserved when the request arrives and settled with the provider's own count
when the answer ends: a cheap estimate (bytes / 4, the usual rule of thumb
for English text and JSON) is enough, since the settlement corrects it.
"""

from __future__ import annotations

from extproc.formats.assemble import CHARS_PER_TOKEN
from extproc.formats.canonical import ChatRequest, EmbeddingRequest


def input_tokens(body: bytes) -> int:
    return max(1, len(body) // CHARS_PER_TOKEN)


def reserve(body: bytes, request: ChatRequest | EmbeddingRequest | None) -> tuple[int, int]:
    """(input estimate, tokens to reserve): the input, plus the output the client allows (none when it
    allows less than none)."""
    estimate = input_tokens(body)
    output = request.max_tokens if isinstance(request, ChatRequest) and request.max_tokens else 0
    return estimate, estimate + max(output, 0)
