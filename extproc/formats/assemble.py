"""A stream's events gathered back into one answer: what the cache stores and what limits settle with.

Reading a stream never changes it: the assembler only looks at the events a
provider's stream decodes into. A stream that ends without a finish on every
choice, or with an in-band failure, is incomplete and never cached.
"""

from __future__ import annotations

from extproc.formats.canonical import (
    ChatResponse,
    Choice,
    Finish,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ThinkingPart,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

CHARS_PER_TOKEN = 4  # the usual estimate when a provider never sends its count


class StreamAssembler:
    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.input_tokens: int | None = None
        self.usage: Usage | None = None
        self.failed = False
        self.output_chars = 0  # what the client received so far, for an estimate when usage never came
        self._choices: dict[int, Choice] = {}
        self._texts: dict[int, list[str]] = {}
        self._calls: dict[tuple[int, int], tuple[str, str, list[str]]] = {}
        self._finished: set[int] = set()

    def add(self, events: list[StreamEvent]) -> None:
        for ev in events:
            if isinstance(ev, TextDelta):
                texts = self._texts.get(ev.index)
                if texts is None:  # the choice's first text: it is made with it, once
                    texts = self._texts[ev.index] = []
                    self._choice(ev.index)
                texts.append(ev.text)
                self.output_chars += len(ev.text)
            elif isinstance(ev, ToolCallDelta):
                call = self._calls.get((ev.index, ev.call_index))
                if call is None:
                    call = self._calls[(ev.index, ev.call_index)] = ("", "", [])
                    self._choice(ev.index)
                call[2].append(ev.arguments)
                self.output_chars += len(ev.arguments)
            elif isinstance(ev, ToolCallStart):
                self._calls[(ev.index, ev.call_index)] = (ev.id, ev.name, [])
                self._choice(ev.index)
            elif isinstance(ev, ThinkingDelta):
                self._thinking(ev)
            elif isinstance(ev, Finish):
                self._choice(ev.index).finish_reason = ev.reason
                self._finished.add(ev.index)
            elif isinstance(ev, UsageUpdate):
                self.usage = ev.usage
            elif isinstance(ev, StreamStart):
                self.id, self.model, self.created = ev.id, ev.model, ev.created
                self.input_tokens = ev.input_tokens
            elif isinstance(ev, StreamFailure):
                self.failed = True

    @property
    def complete(self) -> bool:
        return not self.failed and bool(self._choices) and self._finished >= self._choices.keys()

    def finish_reasons(self) -> list[str]:
        """Each finished choice's reason, in choice order."""
        return [str(c.finish_reason) for _, c in sorted(self._choices.items()) if c.finish_reason is not None]

    def estimated_output_tokens(self) -> int:
        return -(-self.output_chars // CHARS_PER_TOKEN)

    def response(self) -> ChatResponse:
        for index, texts in self._texts.items():
            choice = self._choices[index]
            choice.text = "".join(texts)
            if len(texts) > 1:
                choice.pieces = [len(text) for text in texts]
        for (index, _), (call_id, name, fragments) in sorted(self._calls.items()):
            self._choices[index].tool_calls.append(ToolCall(call_id, name, "".join(fragments)))
        choices = [self._choices[index] for index in sorted(self._choices)]
        return ChatResponse(self.id, self.model, self.created, choices, self.usage)

    def _choice(self, index: int) -> Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = Choice(index)
        return choice

    def _thinking(self, ev: ThinkingDelta) -> None:
        thinking = self._choice(ev.index).thinking
        self.output_chars += len(ev.text)
        if ev.redacted:
            thinking.append(ThinkingPart("", ev.signature, redacted=True))
            return
        last = thinking[-1] if thinking else None
        if last is None or last.signature is not None or last.redacted or last.encrypted is not None:
            thinking.append(ThinkingPart(""))
        last = thinking[-1]
        last.text += ev.text
        if ev.signature is not None:
            last.signature = ev.signature
        if ev.encrypted is not None:
            last.encrypted = ev.encrypted
