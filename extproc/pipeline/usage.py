"""What a request used, for everything that charges it (token limits, budgets, its cost): the
provider's own count, else one estimate from what was seen, made the same way for all of them."""

from __future__ import annotations

from extproc.formats.assemble import CHARS_PER_TOKEN
from extproc.formats.canonical import Usage
from extproc.pipeline.exchange import Exchange

NOTHING = Usage()


def usage_seen(ex: Exchange) -> tuple[Usage, bool]:
    """What the request used, and whether that is the provider's own final count (else an estimate)."""
    if ex.cache_status == "HIT":
        return NOTHING, True  # answered without a provider
    if ex.usage is not None:
        return ex.usage, True
    prompt = ex.input_estimate or max(1, ex.request_bytes // CHARS_PER_TOKEN)
    if (assembler := ex.assembler) is not None:  # a stream that ended before its usage (cancelled, cut)
        output = assembler.estimated_output_tokens()
        seen = assembler.usage  # the count so far, when the provider sends one as it goes (Anthropic, Gemini)
        if seen is None or seen.input_tokens <= 0:
            return Usage(prompt, output), False
        return Usage(
            seen.input_tokens,
            max(output, seen.output_tokens),
            seen.cached_tokens,
            seen.cache_creation_tokens,
            cache_write_1h_tokens=seen.cache_write_1h_tokens,
        ), False
    if ex.status < 400:  # answered, or the client hung up before any answer (status 0): the prompt went out
        return Usage(prompt), False
    return NOTHING, True  # refused or failed: nothing was generated


def tokens_used(ex: Exchange) -> int:
    """What the request really cost in tokens: the provider's count, else an estimate from what was seen."""
    usage, _ = usage_seen(ex)
    return usage.input_tokens + usage.output_tokens
