"""Requests Envoy's HTTP/1.1 codec refuses get Envoy's own status line, not a silent reset.

Each goes over a raw socket: no client library would send them.
"""

from __future__ import annotations

import contextlib
import socket

import pytest

from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

_CHAT = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"


def _status_line(port: int, request: bytes) -> bytes:
    """The first line Envoy answers; a few seconds of patience, then the test fails on a timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        # Envoy may answer and close before it has read everything we sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.partition(b"\r\n")[0]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n", 431),
        (_CHAT + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (_CHAT + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    ],
    ids=["one-megabyte-header", "content-length-with-transfer-encoding", "two-different-content-lengths"],
)
def test_malformed_request_gets_envoys_own_status(gateway: GatewayStack, request_bytes: bytes, status: int) -> None:
    assert _status_line(gateway.port, request_bytes).startswith(f"HTTP/1.1 {status} ".encode())


def test_well_formed_request_on_the_same_listener_still_runs_the_router_pass(gateway: GatewayStack) -> None:
    body = b'{"model":"mock-1","messages":[{"role":"user","content":"hi"}]}'
    request = _CHAT + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert _status_line(gateway.port, request) == b"HTTP/1.1 200 OK"
