"""The built-in mock provider: deterministic answers in the canonical model, so
any client format renders them and apps can be tested for free and offline."""

from __future__ import annotations

import time
import uuid

from extproc.config.model import Provider
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    TextPart,
    Usage,
)


def _prompt_tokens(request: ChatRequest) -> int:
    words = 0
    for message in request.messages:
        for part in message.content:
            if isinstance(part, TextPart):
                words += len(part.text.split())
    return max(words, 1)


def _answer(provider: Provider, request: ChatRequest) -> tuple[str, Usage, str]:
    text = provider.mock_text
    limit = request.max_tokens
    words = text.split(" ")
    finish = "stop"
    if limit is not None and len(words) > limit:
        words, finish = words[:limit], "length"
        text = " ".join(words)
    usage = Usage(input_tokens=_prompt_tokens(request), output_tokens=len(words))
    return text, usage, finish


def respond(provider: Provider, request: ChatRequest) -> ChatResponse:
    """The answer, cut in words: streamed (`response_events`), it comes one word per text delta."""
    text, usage, finish = _answer(provider, request)
    words = text.split(" ")
    pieces = [len(word) + (i > 0) for i, word in enumerate(words)]  # each word after the first with its space
    choice = Choice(index=0, text=text, finish_reason=finish, pieces=pieces)  # type: ignore[arg-type]
    return ChatResponse(
        id=f"chatcmpl-mock{uuid.uuid4().hex[:20]}",
        model=request.model,
        created=int(time.time()),
        choices=[choice],
        usage=usage,
    )


def embed(request: EmbeddingRequest) -> EmbeddingResponse:
    """Deterministic unit-ish vectors derived from the text, so equal inputs embed equally."""
    size = request.dimensions or 8
    vectors = []
    for text in request.inputs:
        seed = sum(text.encode()) or 1
        vectors.append([((seed * (i + 7)) % 997) / 997.0 for i in range(size)])
    tokens = sum(len(t.split()) for t in request.inputs)
    return EmbeddingResponse(model=request.model, vectors=vectors, usage=Usage(input_tokens=tokens))
