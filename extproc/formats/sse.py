"""Incremental Server-Sent Events parser.

Survives chunk splits at any byte, CRLF/CR/LF line ends, comments and
keep-alives, and a stream that ends without its final blank line. Lines
that are not SSE fields (Gemini writes a bare JSON error object mid-stream)
are kept in `SSEEvent.raw` so a decoder can recognise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SSEEvent:
    event: str = ""
    data: str = ""
    raw: list[str] = field(default_factory=list)


class SSEParser:
    __slots__ = ("_buffer", "_data", "_event", "_has_data", "_pending_cr", "_raw")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._raw: list[str] = []
        self._has_data = False
        self._pending_cr = False  # a chunk ended on CR: a following LF belongs to it

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = False
        buffer = self._buffer + chunk
        if b"\r" in buffer:  # rare: CRLF and lone CR end lines too
            self._pending_cr = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = buffer.rfind(b"\n")
        if cut < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[cut + 1 :]
        events: list[SSEEvent] = []
        # One decode for every complete line: a newline byte never falls inside a UTF-8 sequence.
        for line in buffer[:cut].decode("utf-8", "replace").split("\n"):
            self._line(line, events)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: flush a last line and event that had no blank line after them."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer.decode("utf-8", "replace"), events)
            self._buffer = b""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._has_data or self._raw:
                events.append(SSEEvent(self._event, "\n".join(self._data), self._raw))
            self._event, self._data, self._raw, self._has_data = "", [], [], False
            return
        if line.startswith("data: "):  # nearly every line
            self._data.append(line[6:])
            self._has_data = True
            return
        if line[0] == ":":
            return  # comment / keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name in ("id", "retry"):
            pass
        else:
            self._raw.append(line)


def frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame: optional `event:` line, one `data:` line, blank line."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
