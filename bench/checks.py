"""One real request per scenario before any load: a 200 with a sensible answer, or the reason not."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from bench.answers import ANSWER_TEXT

# (content type, body) -> a problem, or None when the answer looks right.
Check = Callable[[str, bytes], str | None]


def probe(url: str, body: bytes, headers: Mapping[str, str], check: Check) -> str | None:
    """None when the scenario may be measured; otherwise why it is skipped."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, content_type, answer = response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as error:
        status, content_type, answer = error.code, error.headers.get("content-type", ""), error.read()
    except OSError as error:
        return f"request failed: {error}"
    if status != 200:
        return f"{status} {_snippet(answer)}"
    problem = check(content_type, answer)
    return f"200 but {problem}: {_snippet(answer)}" if problem else None


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").replace("\n", "\\n")


def _json(content_type: str, body: bytes) -> Any:
    if not content_type.startswith("application/json"):
        raise ValueError(f"content-type {content_type!r}")
    return json.loads(body)


def _sse_data(content_type: str, body: bytes) -> list[str]:
    if not content_type.startswith("text/event-stream"):
        raise ValueError(f"content-type {content_type!r}")
    text = body.decode()
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


def _guard(check: Callable[[str, bytes], str | None]) -> Check:
    def guarded(content_type: str, body: bytes) -> str | None:
        try:
            return check(content_type, body)
        except (ValueError, KeyError, IndexError, TypeError) as error:
            return f"unreadable answer ({type(error).__name__}: {error})"

    return guarded


def _text_is(text: Any, expected: str | None) -> str | None:
    if not isinstance(text, str) or not text:
        return "no answer text"
    if expected is not None and text != expected:
        return f"answer text {text[:60]!r} is not the fake provider's"
    return None


def openai_json(expected: str | None = ANSWER_TEXT) -> Check:
    """`expected=None` accepts any non-empty text (the built-in mock provider)."""

    def check(content_type: str, body: bytes) -> str | None:
        answer = _json(content_type, body)
        if answer.get("object") != "chat.completion":
            return "not a chat.completion"
        return _text_is(answer["choices"][0]["message"]["content"], expected)

    return _guard(check)


def anthropic_json() -> Check:
    def check(content_type: str, body: bytes) -> str | None:
        answer = _json(content_type, body)
        if answer.get("type") != "message":
            return "not an Anthropic message"
        return _text_is("".join(b.get("text", "") for b in answer["content"]), ANSWER_TEXT)

    return _guard(check)


def openai_sse() -> Check:
    def check(content_type: str, body: bytes) -> str | None:
        events = _sse_data(content_type, body)
        if not events or events[-1] != "[DONE]":
            return "stream does not end with [DONE]"
        chunks = [json.loads(data) for data in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
        return _text_is(text, ANSWER_TEXT)

    return _guard(check)


def anthropic_sse() -> Check:
    def check(content_type: str, body: bytes) -> str | None:
        events = [json.loads(data) for data in _sse_data(content_type, body)]
        if not events or events[-1].get("type") != "message_stop":
            return "stream does not end with message_stop"
        deltas = [e["delta"] for e in events if e.get("type") == "content_block_delta"]
        return _text_is("".join(d.get("text", "") for d in deltas), ANSWER_TEXT)

    return _guard(check)


def responses_json() -> Check:
    def check(content_type: str, body: bytes) -> str | None:
        answer = _json(content_type, body)
        if answer.get("object") != "response" or answer.get("status") != "completed":
            return "not a completed response"
        texts = [part["text"] for item in answer["output"] if item["type"] == "message" for part in item["content"]]
        return _text_is("".join(texts), ANSWER_TEXT)

    return _guard(check)


def responses_sse() -> Check:
    def check(content_type: str, body: bytes) -> str | None:
        events = [json.loads(data) for data in _sse_data(content_type, body)]
        if not events or events[-1].get("type") != "response.completed":
            return "stream does not end with response.completed"
        deltas = [e["delta"] for e in events if e.get("type") == "response.output_text.delta"]
        return _text_is("".join(deltas), ANSWER_TEXT)

    return _guard(check)
