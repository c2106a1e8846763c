"""Ask through any official SDK and reduce the answer to what must match across APIs:
text, tool calls, finish reason and usage, in one neutral shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types

CLIENT_KEY = "client-own-key"
PROMPT = "Say hello"


@dataclass
class Outcome:
    text: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, parsed arguments)
    finish: str | None = None  # OpenAI vocabulary: stop | length | tool_calls | content_filter
    usage: tuple[int, int] | None = None  # (prompt tokens incl. cached, output tokens incl. reasoning)


_ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_GEMINI_FILTERS = {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "RECITATION"}


def openai_client(base_url: str, api_key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=base_url + "/v1", max_retries=0, timeout=20)


def anthropic_client(base_url: str, api_key: str = CLIENT_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=20)


def gemini_client(base_url: str, api_key: str = CLIENT_KEY) -> genai.Client:
    options = types.HttpOptions(base_url=base_url, timeout=20_000, retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=api_key, http_options=options)


def ask_openai(base_url: str, model: str, stream: bool, api_key: str = CLIENT_KEY, **extra: Any) -> Outcome:
    client = openai_client(base_url, api_key)
    messages = [{"role": "user", "content": PROMPT}]
    if not stream:
        answer = client.chat.completions.create(model=model, messages=messages, **extra)
        choice = answer.choices[0]
        calls = [(c.function.name, json.loads(c.function.arguments or "{}")) for c in choice.message.tool_calls or []]
        usage = (answer.usage.prompt_tokens, answer.usage.completion_tokens) if answer.usage else None
        return Outcome(choice.message.content or "", calls, choice.finish_reason, usage)
    outcome = Outcome()
    arguments: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    chunks = client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}, **extra
    )
    for chunk in chunks:
        if chunk.usage:
            outcome.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            outcome.text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names[call.index] = call.function.name
                arguments.setdefault(call.index, []).append((call.function and call.function.arguments) or "")
            outcome.finish = choice.finish_reason or outcome.finish
    outcome.tool_calls = [(names[i], json.loads("".join(arguments[i]) or "{}")) for i in sorted(names)]
    return outcome


def ask_anthropic(base_url: str, model: str, stream: bool, api_key: str = CLIENT_KEY, **extra: Any) -> Outcome:
    client = anthropic_client(base_url, api_key)
    kwargs = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": PROMPT}], **extra}
    if stream:
        with client.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    text = "".join(block.text for block in message.content if block.type == "text")
    calls = [(block.name, block.input) for block in message.content if block.type == "tool_use"]
    u = message.usage
    prompt = u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    return Outcome(
        text, calls, _ANTHROPIC_FINISH.get(message.stop_reason or "", message.stop_reason), (prompt, u.output_tokens)
    )


def ask_gemini(base_url: str, model: str, stream: bool, api_key: str = CLIENT_KEY, **extra: Any) -> Outcome:
    client = gemini_client(base_url, api_key)
    if stream:
        chunks = list(client.models.generate_content_stream(model=model, contents=PROMPT, **extra))
    else:
        chunks = [client.models.generate_content(model=model, contents=PROMPT, **extra)]
    outcome = Outcome()
    finish = None
    for chunk in chunks:
        if chunk.usage_metadata and chunk.usage_metadata.prompt_token_count is not None:
            m = chunk.usage_metadata
            outcome.usage = (m.prompt_token_count or 0, (m.candidates_token_count or 0) + (m.thoughts_token_count or 0))
        if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
            finish = "content_filter"
        for candidate in chunk.candidates or []:
            for part in (candidate.content and candidate.content.parts) or []:
                if part.function_call:
                    outcome.tool_calls.append((part.function_call.name, dict(part.function_call.args or {})))
                elif part.text and not part.thought:
                    outcome.text += part.text
            if candidate.finish_reason:
                finish = (
                    candidate.finish_reason.value
                    if hasattr(candidate.finish_reason, "value")
                    else str(candidate.finish_reason)
                )
    if finish == "STOP":
        finish = "tool_calls" if outcome.tool_calls else "stop"
    elif finish == "MAX_TOKENS":
        finish = "length"
    elif finish in _GEMINI_FILTERS:
        finish = "content_filter"
    outcome.finish = finish
    return outcome


_RESPONSES_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def ask_responses(base_url: str, model: str, stream: bool, api_key: str = CLIENT_KEY, **extra: Any) -> Outcome:
    """The Responses API. A stream's failure arrives as events (`error`, `response.failed`), which
    the SDK hands over without raising: raised here, as a client reading them would."""
    client = openai_client(base_url, api_key)
    if stream:
        answer = None
        events = client.responses.create(model=model, input=PROMPT, stream=True, **extra)
        for event in events:
            if event.type in ("error", "response.failed"):
                raise openai.APIError(f"stream failed: {event.type}", request=events.response.request, body=None)
            if event.type in ("response.completed", "response.incomplete"):
                answer = event.response
        assert answer is not None, "the stream ended without its last event"
    else:
        answer = client.responses.create(model=model, input=PROMPT, **extra)
    calls = [(item.name, json.loads(item.arguments or "{}")) for item in answer.output if item.type == "function_call"]
    if answer.status == "incomplete":
        reason = answer.incomplete_details.reason if answer.incomplete_details else None
        finish = _RESPONSES_INCOMPLETE.get(reason or "", reason)
    else:
        finish = "tool_calls" if calls else "stop"
    usage = (answer.usage.input_tokens, answer.usage.output_tokens) if answer.usage else None
    return Outcome(answer.output_text, calls, finish, usage)


ASK = {"openai": ask_openai, "anthropic": ask_anthropic, "gemini": ask_gemini, "responses": ask_responses}
