"""Incremental Server-Sent Events parser, linear in the bytes fed and bounded.

Survives chunk splits at any byte, CRLF/CR/LF line ends, comments and
keep-alives, and a stream that ends without its final blank line. Lines
that are not SSE fields (Gemini writes a bare JSON error object mid-stream)
are kept in `SSEEvent.raw` so a decoder can recognise them.

Each byte is copied a bounded number of times: a line cut across chunks is
gathered in one growing buffer and copied out once, when it ends. A line, or
an event's lines, over `max_line_bytes` stop the parser (`overflow`): nothing
more is read, and the decoder ends the stream with an error. Without the
bound a provider (or anything posing as one) could make the gateway hold and
rescan an endless line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from extproc.config.schema import MAX_STREAM_LINE_BYTES as MAX_LINE_BYTES  # extproc.max_stream_line_bytes


@dataclass(slots=True)
class SSEEvent:
    event: str = ""
    data: str = ""
    raw: list[str] = field(default_factory=list)


def overflow_message(limit: int) -> str:
    return f"the provider's stream sent a line (or an event) over {limit} bytes"


class SSEParser:
    __slots__ = ("_data", "_event", "_has_data", "_line", "_max", "_pending_cr", "_raw", "_size", "overflow")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes  # counted in bytes while a line is open, in characters once decoded
        self._line = bytearray()  # the bytes of a line not yet ended
        self._event = ""
        self._data: list[str] = []
        self._raw: list[str] = []
        self._size = 0  # characters of the lines gathered for the event being read
        self._has_data = False
        self._pending_cr = False  # a chunk ended on CR: a following LF belongs to it
        self.overflow = False  # a line or an event went over the bound: the stream is not read further

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self.overflow:
            return []
        if (
            chunk.endswith(b"\n\n")
            and not self._line
            and not self._pending_cr
            and not self._has_data
            and not self._raw
            and not self._event
            and len(chunk) <= self._max
            and b"\r" not in chunk
        ):
            return self._whole_events(chunk.decode("utf-8", "replace"))
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = False
        carriage = b"\r" in chunk  # rare: CRLF and lone CR end lines too
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) if carriage else chunk.rfind(b"\n")
        if cut < 0:
            self._line += chunk
            if len(self._line) > self._max:
                self._stop()
            return []
        end = cut - 1 if carriage and cut and chunk[cut] == 0x0A and chunk[cut - 1] == 0x0D else cut  # CRLF
        head: bytes | bytearray
        if self._line:  # the line held from earlier chunks ends here: extended in place, decoded once
            head = self._line
            head += chunk[:end]
            self._line = bytearray(chunk[cut + 1 :])
        else:
            head = chunk[:end]
            self._line += chunk[cut + 1 :]
        if carriage:
            self._pending_cr = cut == len(chunk) - 1 and chunk[cut] == 0x0D
            head = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SSEEvent] = []
        # One decode for every complete line: a newline byte never falls inside a UTF-8 sequence.
        lines = head.decode("utf-8", "replace").split("\n")
        long_lines = len(head) > self._max
        for line in lines:
            if long_lines and len(line) > self._max:
                self._stop()
                return events
            self._line_of(line, events)
            if self.overflow:
                return events
        if len(self._line) > self._max:
            self._stop()
        return events

    def _whole_events(self, text: str) -> list[SSEEvent]:
        """A chunk of whole events (a provider writes one or more per chunk) with nothing held before
        it, each event read by its shape: `data:` alone, or `event:` then `data:`, the lines nearly
        every provider writes. Any other event goes through the line-by-line reading, which gives
        the same events for these two shapes; the chunk is within the bound, so no event is over it."""
        events: list[SSEEvent] = []
        for block in text[:-2].split("\n\n"):
            if block.startswith("data: ") and "\n" not in block:
                events.append(SSEEvent("", block[6:], []))
                continue
            if block.startswith("event: "):
                name, _, data = block.partition("\n")
                if data.startswith("data: ") and "\n" not in data:
                    events.append(SSEEvent(name[7:], data[6:], []))
                    continue
            for line in block.split("\n"):
                self._line_of(line, events)
            self._line_of("", events)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: flush a last line and event that had no blank line after them."""
        events: list[SSEEvent] = []
        if self.overflow:
            return events
        if self._line:
            self._line_of(self._line.decode("utf-8", "replace"), events)
            self._line = bytearray()
        if not self.overflow:
            self._line_of("", events)
        return events

    def _stop(self) -> None:
        self.overflow = True
        self._line = bytearray()
        self._data, self._raw = [], []

    def _line_of(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._has_data or self._raw:  # else no line was kept: nothing to clear but the name
                events.append(SSEEvent(self._event, "\n".join(self._data), self._raw))
                self._data, self._raw, self._has_data = [], [], False
            self._event, self._size = "", 0
            return
        if line.startswith("data: "):  # nearly every line
            if self._gather(line):
                self._data.append(line[6:])
                self._has_data = True
            return
        if line.startswith("event: "):  # the other line of most events
            self._event = line[7:]
            return
        if line[0] == ":":
            return  # comment / keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            if self._gather(line):
                self._data.append(value)
                self._has_data = True
        elif name == "event":
            self._event = value
        elif name in ("id", "retry"):
            pass
        elif self._gather(line):
            self._raw.append(line)

    def _gather(self, line: str) -> bool:
        """False once the event's lines go over the bound: an event of many lines is bounded as one line is."""
        self._size += len(line)
        if self._size > self._max:
            self._stop()
            return False
        return True

    @property
    def max_line_bytes(self) -> int:
        return self._max


class LineGate:
    """Lets a same-API stream through in whole lines. A chunk that ends mid-line goes on up to its
    last line end and the rest is held for the next one, so a line over the bound is caught before
    any of it reached the client (`overflow`), whose stream then ends at a line boundary with an
    in-band error. Providers cut their chunks at line ends: then nothing is held or copied."""

    __slots__ = ("_held", "_max", "at_event_end", "overflow")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._held = bytearray()
        self.at_event_end = True  # what went through so far ends with a blank line
        self.overflow = False

    def let_through(self, chunk: bytes, end_of_stream: bool) -> bytes | None:
        """None: the chunk goes on unchanged. Else what to send in its place (b"": nothing yet).
        Once `overflow` is set, what it returns is what went before the long line."""
        if self.overflow:
            return b""
        if len(self._held) + len(chunk) > self._max:  # rare: a line over the bound may be in there
            return self._through_long(chunk, end_of_stream)
        if not self._held and (not chunk or chunk[-1] in (0x0A, 0x0D) or end_of_stream):
            self._passed(chunk)
            return None  # the usual case: the chunk ends a line
        cut = len(chunk) - 1 if end_of_stream else max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if cut < 0:
            self._held += chunk
            return b""
        self._held += chunk[: cut + 1]
        out = bytes(self._held)
        self._held = bytearray(chunk[cut + 1 :])
        self._passed(out)
        return out

    def _through_long(self, chunk: bytes, end_of_stream: bool) -> bytes:
        self._held += chunk
        data, self._held = self._held, bytearray()
        if (start := _first_long_line(data, self._max)) >= 0:
            self.overflow = True
            out = bytes(data[:start])  # whole lines: the long one starts right after a line end
        else:
            cut = len(data) - 1 if end_of_stream else max(data.rfind(b"\n"), data.rfind(b"\r"))
            out, self._held = bytes(data[: cut + 1]), data[cut + 1 :]
        self._passed(out)
        return out

    def _passed(self, out: bytes) -> None:
        if out:
            self.at_event_end = out.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))


_LINE_END = re.compile(rb"[\r\n]")


def _first_long_line(data: bytes | bytearray, limit: int) -> int:
    """Where the first line longer than `limit` starts, -1 if none: each byte looked at once. An
    unended last line counts as soon as it is over the bound."""
    start = 0
    for end in _LINE_END.finditer(data):
        if end.start() - start > limit:
            return start
        start = end.end()
    return start if len(data) - start > limit else -1


def frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame: optional `event:` line, one `data:` line, blank line."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
