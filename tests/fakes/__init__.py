"""Fake LLM providers speaking the real OpenAI, Anthropic and Gemini wire formats."""

from tests.fakes.providers import (
    FakeAnthropic,
    FakeGemini,
    FakeOpenAI,
    FakeProvider,
    RecordedRequest,
    Reply,
    wait_until,
)

__all__ = ["FakeAnthropic", "FakeGemini", "FakeOpenAI", "FakeProvider", "RecordedRequest", "Reply", "wait_until"]
