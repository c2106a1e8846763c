"""HTTP/2 framing (RFC 9113) for the ext_proc server: frame types, flags, settings, builders.

Only what a gRPC server over h2c with prior knowledge needs. Header blocks are
decoded with `hpack`; the server's own header blocks are constant literals that
never touch the peer's dynamic table, so no encoder state is kept.
"""

from __future__ import annotations

import struct
from typing import TypeVar

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)

END_STREAM = 0x1  # DATA, HEADERS
ACK = 0x1  # SETTINGS, PING
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM = 0xB

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1

# length (24 bits, as a byte and a short), type, flags, stream id (top bit reserved)
FRAME_HEADER = struct.Struct(">BHBBI")
_SETTING = struct.Struct(">HI")
_U32 = struct.Struct(">I")


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return FRAME_HEADER.pack(length >> 16, length & 0xFFFF, kind, flags, stream_id) + payload


def settings_frame(settings: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(key, value) for key, value in settings.items()))


def parse_settings(payload: bytes) -> dict[int, int]:
    return {key: value for key, value in _SETTING.iter_unpack(payload)}


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int) -> bytes:
    return frame(GOAWAY, 0, 0, _U32.pack(last_stream_id) + _U32.pack(code))


def read_u32(payload: bytes) -> int:
    return int(_U32.unpack_from(payload)[0]) & MAX_WINDOW


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """A block of never-indexed literals: valid whatever the peer's dynamic table holds."""
    return hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in headers], huffman=False)


class HeaderDecoder:
    """hpack decoding that remembers the blocks which leave the dynamic table as it was: once its
    headers are indexed, Envoy opens every ext_proc stream with the same few bytes. A block that
    changes the table forgets them all, since an index may now name another header. Only small
    blocks are remembered (Envoy's indexed ones are a few bytes): a peer cannot fill the memo."""

    def __init__(self, max_list_size: int) -> None:
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = max_list_size
        self._known: dict[bytes, dict[str, str]] = {}

    def decode(self, block: bytes) -> dict[str, str]:
        """The block's headers (read-only: a remembered block's are shared)."""
        if (known := self._known.get(block)) is not None:
            return known
        table = self._decoder.header_table.dynamic_entries
        count, first = len(table), table[0] if table else None
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in self._decoder.decode(block, raw=True)
        }
        # Each insertion puts a new tuple first, even one equal to the old first entry (whose
        # index then names another header): identity, not equality, tells the table changed.
        if len(table) != count or (table[0] if table else None) is not first:
            self._known.clear()
        elif len(self._known) < 64 and len(block) <= 1024:
            self._known[block] = headers
        return headers


_Payload = TypeVar("_Payload", bytes, memoryview)


def strip_padding(flags: int, payload: _Payload) -> _Payload:
    """The payload of a DATA or HEADERS frame without its padding (and a HEADERS frame's priority)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            raise ValueError("padded frame without its pad length")
        start, end = 1, end - payload[0]
    if flags & PRIORITY_FLAG:
        start += 5
    if start > end:
        raise ValueError("padding longer than the frame")
    return payload[start:end] if (start, end) != (0, len(payload)) else payload
