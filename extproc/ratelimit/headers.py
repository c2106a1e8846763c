"""Rate-limit headers as OpenAI sends them (and its SDK reads them), on refusals and on answers.

`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, reset as a duration
("1s", "6m0s", "20ms"); a refusal adds `retry-after` (whole seconds) and
`retry-after-ms`, which the openai and anthropic SDKs prefer.
"""

from __future__ import annotations

import math

from extproc.store.base import Decision

Headers = list[tuple[str, str]]


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def limit_headers(kind: str, decision: Decision) -> Headers:
    """`kind` is requests or tokens."""
    return [
        (f"x-ratelimit-limit-{kind}", str(decision.limit)),
        (f"x-ratelimit-remaining-{kind}", str(decision.remaining)),
        (f"x-ratelimit-reset-{kind}", duration(decision.reset_s)),
    ]


def retry_headers(retry_after_s: float) -> Headers:
    return [
        ("retry-after", str(max(1, math.ceil(retry_after_s)))),
        ("retry-after-ms", str(math.ceil(retry_after_s * 1000))),
    ]


def tightest(decisions: list[Decision]) -> Decision | None:
    """The bucket a client should pace itself by: the one with the least left."""
    return min(decisions, key=lambda d: (d.remaining, -d.reset_s), default=None)
