"""Providers that never give an HTTP answer, at the TCP level: one resets the connection once it has
the request, one answers bytes that are no HTTP, one reads the request and says nothing."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Literal, Self

Behaviour = Literal["reset", "garbage", "silent"]


class BrokenProvider:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name=f"broken-{behaviour}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()  # accept() fails: the thread ends
        self._thread.join(timeout=10)
        for connection in self._open:
            connection.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.settimeout(5)
            with contextlib.suppress(OSError):
                connection.recv(1 << 20)  # the request (its start is enough)
            if self.behaviour == "silent":
                self._open.append(connection)  # held open, never answered
                continue
            if self.behaviour == "garbage":
                connection.sendall(b"this is no HTTP\r\n\r\n")
            # SO_LINGER 0: close sends a RST, before any header.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
