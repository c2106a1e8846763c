"""A provider that writes a stream as real ones do: an event at a time, a pace apart.

The fake provider of `make bench` (an Envoy answering canned bodies) writes a whole stream at
once, so Envoy hands the ext_proc one answer message per request. A real provider writes each
event as its tokens come, and Envoy sends the ext_proc a message per read: what a long answer
costs per message is measured against this one.
"""

from __future__ import annotations

from bench import answers
from tests.fakes.base import SSE_UTF8, FakeProvider, RecordedRequest, Reply, split_sse_events

PACE_S = 0.001  # between events: each reaches Envoy as its own read (real providers: tens of ms)


class PacedStreams(FakeProvider):
    """OpenAI chat streams, the bench's answer (`answers.openai_sse`) written an event at a time."""

    name = "paced"
    default_api_key = ""

    def __init__(self, pace_s: float = PACE_S) -> None:
        super().__init__("")
        self.events = split_sse_events(answers.openai_sse().encode())
        self._pace = pace_s

    def answer(self, request: RecordedRequest) -> Reply:
        self.requests.clear()  # a benchmark's thousands of 80 KB requests are not kept
        return Reply(content_type=SSE_UTF8, chunks=self.events, chunk_delay=self._pace)
