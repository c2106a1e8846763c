"""Fake OpenAI, Anthropic and Gemini servers that speak the real wire formats.

Each fake is an aiohttp server on 127.0.0.1 (free port) in its own thread with
its own event loop, so synchronous SDK clients, the gateway under test and
async tests can all talk to it. A fake answers with, in order:

1. replies queued with :meth:`FakeProvider.enqueue` / ``enqueue_fixture``
   (sent as they are, without auth or model checks: the test chose them);
2. otherwise a deterministic default answer derived from the request, written
   in the provider's exact format (auth, model and validation errors included).

Formats follow the recordings in ``shared/fixtures`` (see mapping.md there).

The code lives in one module per concern: ``base`` (FakeProvider, Reply,
RecordedRequest and the shared helpers), ``plans`` (text helpers and the
provider-neutral answer plan), ``openai``, ``anthropic`` and ``gemini``.
This module is the import point the tests use.
"""

from __future__ import annotations

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import FakeProvider, RecordedRequest, Reply, split_sse_events, wait_until
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

__all__ = [
    "FakeAnthropic",
    "FakeGemini",
    "FakeOpenAI",
    "FakeProvider",
    "RecordedRequest",
    "Reply",
    "split_sse_events",
    "wait_until",
]
