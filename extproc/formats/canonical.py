"""The canonical model: every wire format parses into it and renders from it.

N formats need 2N converters, not N squared. Field names follow OpenAI's
meaning where the three APIs agree; the docstrings say where they differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(slots=True)
class TextPart:
    text: str


@dataclass(slots=True)
class ImagePart:
    """An image given inline (base64 `data` + `media_type`) or by `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class ThinkingPart:
    """Reasoning content; `signature` lets Anthropic/Gemini verify it on the next turn.

    A `redacted` part is Anthropic's redacted_thinking: no text, and `signature`
    carries its opaque `data` (both only mean something to Anthropic)."""

    text: str
    signature: str | None = None
    redacted: bool = False
    encrypted: str | None = None  # OpenAI's reasoning encrypted_content: only an OpenAI Responses API reads it


@dataclass(slots=True)
class FilePart:
    """A document (a PDF, a text file) given inline (base64 `data` + `media_type`) or by `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    filename: str | None = None


Part = TextPart | ImagePart | ThinkingPart | FilePart


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, kept as text so it passes through unchanged
    signature: str | None = None  # Gemini thoughtSignature attached to the call


@dataclass(slots=True)
class Message:
    """One turn. `system` covers OpenAI system/developer, Anthropic `system`,
    Gemini `systemInstruction`. A `tool` message is one tool result; `name`
    is the called function's name (Gemini needs it, parsers look it up)."""

    role: Role
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # plain JSON Schema
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "function"]
    name: str | None = None  # set when mode == "function"


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ApiFeature:
    """Something the client's own API carries that the canonical model does not (a server tool, a
    block type or a field the gateway does not know, a cache hint). A provider that speaks that API
    gets it with the client's bytes; any other provider cannot: `when_foreign` says what then happens
    to the request.

    - "policy": dropped and named, or refused, per the provider's `unsupported` policy;
    - "drop": always dropped and named (history only the client's API can read);
    - "refuse": always a 400 naming `param` (the request cannot be answered without it).

    `value` is the client's JSON for it: never rendered, but part of the cache key, so two requests
    that differ only in what the canonical model cannot say never share an answer."""

    name: str  # named in x-gateway-dropped-features (see `feature_name`)
    param: str  # the client's field, named in a 400
    when_foreign: Literal["policy", "drop", "refuse"] = "policy"
    value: Any = None


_FEATURE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./")
MAX_FEATURE_NAME = 64


def feature_name(prefix: str, client_word: object) -> str:
    """`prefix` and a word the client chose (a block or tool type, a field name) as a feature name
    that is safe in a response header and a log line: letters, digits, `_-./`, at most 64 characters;
    anything else names the family only."""
    safe = isinstance(client_word, str) and 0 < len(client_word) <= MAX_FEATURE_NAME
    if safe and all(c in _FEATURE_CHARS for c in str(client_word)):
        return f"{prefix}{client_word}"
    return f"{prefix}other"


def unset(value: object) -> bool:
    """A field the client sent as null, false, "" or []: asking for nothing, so not a feature to carry.
    An empty object is something (`googleSearch: {}`, `web_search_options: {}` switch a tool on)."""
    return value is None or value is False or (isinstance(value, (str, list)) and not value)


def note_unknown(features: list[ApiFeature], prefix: str, word: object, param: str, value: Any) -> None:
    """A type, role or value the canonical model does not know, named `<prefix><word>`."""
    features.append(ApiFeature(feature_name(prefix, word), param, value=value))


def note_unknown_fields(
    obj: dict[str, Any], known: frozenset[str], features: list[ApiFeature], prefix: str = "", at: str = ""
) -> None:
    """Each field of `obj` that is set and not `known` (what the canonical request is read from), as
    the feature `<prefix><key>` at the client's field `<at><key>`."""
    for key, value in obj.items():
        if key not in known and not unset(value):
            features.append(ApiFeature(feature_name(prefix, key), at + key, value=value))


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False  # OpenAI stream_options.include_usage
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    reasoning_effort: str | None = None  # "minimal" | "low" | "medium" | "high"
    thinking_budget: int | None = None  # tokens; Anthropic budget_tokens, Gemini thinkingBudget
    reasoning_summary: str | None = None  # show the reasoning ("auto", "detailed", ...): Anthropic display "summarized"
    # Responses namespace tools are flattened for providers without namespaces: flat name -> (namespace, name)
    tool_namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)
    api_features: list[ApiFeature] = field(default_factory=list)  # see ApiFeature
    # The client's body as its parser read it: a provider of the client's own API is sent those
    # bytes, so the cache key adds what the fields above do not carry (`formats.carried`).
    source: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    # Set while the conversation (messages, tools) is left unread: a request whose client's bytes
    # go on untouched needs only the fields read above (`read_conversation` reads the rest).
    # It takes the request, so the request and what reads it hold no cycle: an unread request is
    # freed by reference counting, its parsed body with it, not by the collector.
    unread: Callable[[ChatRequest], None] | None = field(default=None, repr=False, compare=False)


def release_body(request: ChatRequest) -> None:
    """Once the request went on to its one provider: its parsed body is not kept for the answer's
    whole life (an agent's is some 140 KB of objects, held as long as its stream lasts). A
    conversation left unread stays unread: the answer's stages read only the fields above (a
    pool's answer reads the conversation again: a pooled request keeps it)."""
    request.source = None
    request.unread = None


def read_conversation(request: ChatRequest) -> ChatRequest:
    """`request` with its messages and tools read (a no-op when they were read with the rest)."""
    if request.unread is not None:
        read, request.unread = request.unread, None
        read(request)
    return request


@dataclass(slots=True)
class Usage:
    """`input_tokens` counts every prompt token, cached ones included (OpenAI's
    prompt_tokens); `output_tokens` includes reasoning tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the part of cache_creation_tokens kept an hour (Anthropic's)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class Choice:
    index: int = 0
    text: str = ""
    thinking: list[ThinkingPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    refusal: str | None = None
    pieces: list[int] = field(default_factory=list)  # a streamed text's delta lengths; a replay cuts it the same


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    created: int
    choices: list[Choice]
    usage: Usage | None = None


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    task_type: str | None = None  # Gemini taskType
    # Gemini's per-document `title` (with taskType RETRIEVAL_DOCUMENT): empty, or one per input
    titles: list[str | None] = field(default_factory=list)


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    vectors: list[list[float]]
    usage: Usage | None = None


# ---- streaming: a provider stream decodes into these, a client stream encodes from them


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    created: int
    input_tokens: int | None = None


@dataclass(slots=True)
class TextDelta:
    text: str
    index: int = 0  # choice index


@dataclass(slots=True)
class ThinkingDelta:
    """A piece of thinking text and/or the signature closing it. A `redacted` delta is one
    whole Anthropic redacted_thinking block, its opaque `data` in `signature` (as in ThinkingPart)."""

    text: str = ""
    signature: str | None = None
    index: int = 0
    redacted: bool = False
    encrypted: str | None = None  # OpenAI's reasoning encrypted_content, closing the reasoning it belongs to


@dataclass(slots=True)
class ToolCallStart:
    """A new tool call in choice `index`; `call_index` counts calls within the choice."""

    call_index: int
    id: str
    name: str
    index: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    call_index: int
    arguments: str  # a fragment of the JSON text
    index: int = 0


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    index: int = 0


@dataclass(slots=True)
class UsageUpdate:
    """Cumulative usage so far; the last one seen is the final count."""

    usage: Usage


@dataclass(slots=True)
class StreamFailure:
    """The provider failed after the stream started: an in-band error for the client."""

    error: Any  # extproc.errors.GatewayError


StreamEvent = (
    StreamStart | TextDelta | ThinkingDelta | ToolCallStart | ToolCallDelta | Finish | UsageUpdate | StreamFailure
)


def effort_of(request: ChatRequest) -> str | None:
    """The request's reasoning effort for an API that takes a level (OpenAI's reasoning_effort and
    reasoning.effort): the client's own level, else one for its thinking budget (Anthropic
    budget_tokens, Gemini thinkingBudget; approximate). A budget of 0 (thinking off) or -1 (the
    model decides) leaves the model's default."""
    if request.reasoning_effort is not None:
        return request.reasoning_effort
    budget = request.thinking_budget
    if budget is None or budget <= 0:
        return None
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def with_user_turn(messages: list[Message]) -> list[Message]:
    """Anthropic and Gemini need one non-system turn; OpenAI accepts a conversation of
    system/developer messages only. Such a conversation is sent as one user turn."""
    if not messages or any(message.role != "system" for message in messages):
        return messages
    return [Message("user", [part for message in messages for part in message.content])]
