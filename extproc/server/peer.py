"""Who may speak to the ext_proc as Envoy does.

On a Unix socket: a process of this uid (Envoy runs as the ext_proc's user, README) or root, told
by the kernel (SO_PEERCRED); the socket's mode (0600) already keeps others out, this holds too
when the mode or its directory were opened wider, or before the mode is set at start. On TCP:
a connection is served once a stream on it carried the token Envoy reads from its SDS file
(xds/render_peer.py); any other peer gets UNAUTHENTICATED and the connection ends.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
from collections.abc import Mapping

from extproc.contract import EXTPROC_TOKEN_HEADER

_UCRED = struct.Struct("3i")  # pid, uid, gid


def unix_peer(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of a Unix socket's peer; None for another kind of socket."""
    if sock.family != socket.AF_UNIX:
        return None
    pid, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid, uid


def uid_allowed(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def has_token(metadata: Mapping[str, str], token: bytes) -> bool:
    """Compared in constant time."""
    return hmac.compare_digest(metadata.get(EXTPROC_TOKEN_HEADER, "").encode(), token)
