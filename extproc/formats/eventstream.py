"""AWS event-stream framing (``application/vnd.amazon.eventstream``): an incremental decoder and an encoder.

A frame is ``total_length:u32 headers_length:u32 prelude_crc:u32 headers payload message_crc:u32``, big-endian,
where ``prelude_crc`` is the CRC32 of the first 8 bytes and ``message_crc`` the CRC32 of everything before it.
Bedrock's ConverseStream and InvokeModelWithResponseStream answer in these frames.

The decoder is fed chunks cut anywhere. It checks both CRCs before it hands a message out, refuses a frame
whose declared length is under the 16-byte minimum or over ``max_frame_bytes`` as soon as the prelude is in
(so a bad length never makes it buffer without bound), and copies each byte at most twice: once into the
buffer that holds a frame cut across chunks (only such a frame: whole frames are read in place from the
chunk), once into the message's payload. ``bytes_buffered`` counts the first copy.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

# One limit for a whole frame. Bedrock's largest payload is a 1,000,000-byte chunk (base64 in JSON);
# the spec allows 24 MiB payloads, which no Bedrock answer comes near.
MAX_FRAME_BYTES = 16 * 1024 * 1024

PRELUDE_BYTES = 12  # total_length, headers_length, prelude_crc
MIN_FRAME_BYTES = PRELUDE_BYTES + 4  # no headers, no payload, the message CRC

_PRELUDE = struct.Struct("!III")
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_I8 = struct.Struct("!b")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_I64 = struct.Struct("!q")

# Header value types (the wire's type byte).
_TRUE, _FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)
_INTEGERS = {_BYTE: _I8, _SHORT: _I16, _INT: _I32, _LONG: _I64}


@dataclass(frozen=True, slots=True)
class Timestamp:
    """A timestamp header: milliseconds since the epoch (kept as the wire's integer)."""

    millis: int


HeaderValue = bool | int | bytes | str | Timestamp | uuid.UUID


class EventMessage(NamedTuple):
    headers: dict[str, HeaderValue]
    payload: bytes

    def text(self, name: str) -> str | None:
        """A string header, or None when it is absent or of another type."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamError(ValueError):
    """The stream cannot be read further. ``messages`` are the whole, checked messages that came before the
    failure in the same :meth:`EventStreamDecoder.feed` call: they are good and belong to the client."""

    def __init__(self, message: str, messages: list[EventMessage] | None = None) -> None:
        super().__init__(message)
        self.messages: list[EventMessage] = messages or []


class CorruptFrame(EventStreamError):
    """A bad prelude or message CRC, a length out of bounds, or headers that do not parse."""


class TruncatedStream(EventStreamError):
    """The stream ended inside a frame."""


class EventStreamDecoder:
    """Feed chunks in order, then call :meth:`close` at the end of the stream.

    A failure raises :class:`CorruptFrame` (carrying the messages before it in that chunk); after it every
    call raises again, with no messages: a stream whose framing is lost cannot be resynchronised.
    """

    __slots__ = ("_error", "_frame_length", "_held", "_max", "bytes_buffered")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._held = bytearray()  # the start of a frame cut across chunks
        self._frame_length = 0  # the held frame's total length, once its prelude is in and checked
        self._error: EventStreamError | None = None
        self.bytes_buffered = 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[EventMessage]:
        self._raise_if_failed()
        messages: list[EventMessage] = []
        try:
            self._feed(memoryview(chunk).cast("B"), messages)
        except CorruptFrame as error:
            self._error, self._held = error, bytearray()
            error.messages = messages
            raise
        return messages

    def close(self) -> None:
        """The stream ended: :class:`TruncatedStream` if it ended inside a frame."""
        self._raise_if_failed()
        if self._held:
            expected = str(self._frame_length) if self._frame_length else f"at least {MIN_FRAME_BYTES}"
            self._error = TruncatedStream(
                f"the event stream ended inside a frame ({len(self._held)} of {expected} bytes)"
            )
            self._held = bytearray()
            raise self._error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise type(self._error)(f"the event stream already failed: {self._error}")

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._held)

    def _feed(self, view: memoryview, messages: list[EventMessage]) -> None:
        position = 0
        if self._held:
            position = self._complete_held(view)
            if self._frame_length == 0 or len(self._held) < self._frame_length:
                return  # the whole chunk went into the held frame
            messages.append(_parse(memoryview(self._held)))
            self._held = bytearray()
            self._frame_length = 0
        end, length = len(view), 0
        while end - position >= PRELUDE_BYTES:
            length = self._check_prelude(view[position : position + PRELUDE_BYTES])
            if end - position < length:
                break
            messages.append(_parse(view[position : position + length]))
            position, length = position + length, 0
        if position < end:  # the start of a frame: held until the rest comes
            self._hold(view[position:])
            self._frame_length = length

    def _complete_held(self, view: memoryview) -> int:
        """Move into the held frame only the bytes it still lacks; the position in ``view`` after them."""
        position = 0
        if self._frame_length == 0:  # the prelude itself was cut
            position = min(PRELUDE_BYTES - len(self._held), len(view))
            self._hold(view[:position])
            if len(self._held) < PRELUDE_BYTES:
                return position
            self._frame_length = self._check_prelude(memoryview(self._held))
        take = min(self._frame_length - len(self._held), len(view) - position)
        self._hold(view[position : position + take])
        return position + take

    def _hold(self, part: memoryview) -> None:
        self._held += part
        self.bytes_buffered += len(part)

    def _check_prelude(self, prelude: memoryview) -> int:
        total, headers_length, crc = _PRELUDE.unpack(prelude)
        if zlib.crc32(prelude[:8]) != crc:
            raise CorruptFrame(f"event-stream prelude CRC mismatch (expected {crc:#010x})")
        if total < MIN_FRAME_BYTES:
            raise CorruptFrame(f"event-stream frame declares {total} bytes, under the {MIN_FRAME_BYTES}-byte minimum")
        if total > self._max:
            raise CorruptFrame(f"event-stream frame declares {total} bytes, over the {self._max}-byte limit")
        if headers_length > total - MIN_FRAME_BYTES:
            raise CorruptFrame(f"event-stream headers length {headers_length} does not fit a {total}-byte frame")
        return int(total)


def _parse(frame: memoryview) -> EventMessage:
    """A whole frame whose prelude was checked: check the message CRC, then read headers and payload."""
    (crc,) = _U32.unpack(frame[-4:])
    if zlib.crc32(frame[:-4]) != crc:
        raise CorruptFrame(f"event-stream message CRC mismatch (expected {crc:#010x})")
    (headers_length,) = _U32.unpack(frame[4:8])
    headers_end = PRELUDE_BYTES + headers_length
    headers = _parse_headers(frame[PRELUDE_BYTES:headers_end])
    return EventMessage(headers, bytes(frame[headers_end:-4]))


def _parse_headers(section: memoryview) -> dict[str, HeaderValue]:
    data = bytes(section)  # one copy of a few dozen bytes: indexing and slicing bytes beats a memoryview
    headers: dict[str, HeaderValue] = {}
    position, end = 0, len(data)
    try:
        while position < end:
            name_end = position + 1 + data[position]
            if name_end >= end:  # the name and the type byte must fit
                raise CorruptFrame("event-stream header runs past the headers section")
            name = data[position + 1 : name_end].decode()
            kind, position = data[name_end], name_end + 1
            if kind == _STRING:  # nearly every header Bedrock sends: read inline
                (length,) = _U16.unpack_from(data, position)
                value_end = position + 2 + length
                if value_end > end:
                    raise CorruptFrame("event-stream header value runs past the headers section")
                value: HeaderValue = data[position + 2 : value_end].decode()
                position = value_end
            else:
                value, position = _header_value(data, kind, position)
            if name in headers:
                raise CorruptFrame(f"event-stream header {name!r} appears twice")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as error:
        raise CorruptFrame(f"event-stream headers do not parse: {error}") from None
    return headers


def _header_value(data: bytes, kind: int, position: int) -> tuple[HeaderValue, int]:
    if kind in _INTEGERS:
        number = _INTEGERS[kind]
        return number.unpack_from(data, position)[0], position + number.size
    if kind in (_STRING, _BYTES):
        (length,) = _U16.unpack_from(data, position)
        raw = data[position + 2 : position + 2 + length]
        if len(raw) != length:
            raise CorruptFrame("event-stream header value runs past the headers section")
        return (raw.decode() if kind == _STRING else raw), position + 2 + length
    if kind in (_TRUE, _FALSE):
        return kind == _TRUE, position
    if kind == _TIMESTAMP:
        return Timestamp(_I64.unpack_from(data, position)[0]), position + 8
    if kind == _UUID:
        raw = data[position : position + 16]
        if len(raw) != 16:
            raise CorruptFrame("event-stream uuid header runs past the headers section")
        return uuid.UUID(bytes=raw), position + 16
    raise CorruptFrame(f"event-stream header type {kind} is unknown")


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One frame. Headers keep their order; an int is written as int32, or int64 when it does not fit."""
    encoded = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = MIN_FRAME_BYTES + len(encoded) + len(payload)
    if total > 0xFFFFFFFF:
        raise ValueError("an event-stream frame is at most 4 GiB")
    prelude = struct.pack("!II", total, len(encoded))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + _U32.pack(zlib.crc32(body))


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    if not 0 < len(raw_name) < 256:
        raise ValueError(f"an event-stream header name is 1 to 255 bytes, not {len(raw_name)}")
    return bytes([len(raw_name)]) + raw_name + _encode_value(value)


def _encode_value(value: HeaderValue) -> bytes:
    if isinstance(value, bool):  # before int: a bool is an int
        return bytes([_TRUE if value else _FALSE])
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return bytes([_INT]) + _I32.pack(value)
        return bytes([_LONG]) + _I64.pack(value)
    if isinstance(value, str | bytes):
        raw = value.encode() if isinstance(value, str) else value
        if len(raw) > 0xFFFF:
            raise ValueError("an event-stream header value is at most 65535 bytes")
        return bytes([_STRING if isinstance(value, str) else _BYTES]) + _U16.pack(len(raw)) + raw
    if isinstance(value, Timestamp):
        return bytes([_TIMESTAMP]) + _I64.pack(value.millis)
    return bytes([_UUID]) + value.bytes
