"""A real redis-server for tests: a local process on a free loopback port, no persistence."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.stack import free_port
from tests.support.wait import wait_until


class RedisServer:
    def __init__(self, workdir: Path, password: str | None = None, tls: bool = False) -> None:
        self.workdir = workdir
        self.password = password
        self.tls = tls  # TLS only (no plain port), with a certificate from a test CA at `ca_file`
        self.ca_file = workdir / "ca.pem"
        self.port = free_port()  # kept across restarts, so clients can reconnect to the same address
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server not found: install it (apt-get install redis-server; the Makefile and CI do)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir)]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.tls:
            args = self._tls_args(args)
        with (self.workdir / f"redis-{self.port}.log").open("ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def _tls_args(self, args: list[str]) -> list[str]:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert.private_key_pem.write_to_path(str(self.workdir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.workdir / "cert.pem"))
        args[args.index("--port") + 1] = "0"  # no plain port
        return [
            *args,
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.workdir / "cert.pem"),
            "--tls-key-file",
            str(self.workdir / "key.pem"),
            "--tls-ca-cert-file",
            str(self.ca_file),
            "--tls-auth-clients",
            "no",
        ]

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        if not self.tls:
            return sock
        return ssl.create_default_context(cafile=str(self.ca_file)).wrap_socket(sock, server_hostname="127.0.0.1")

    def _wait_ready(self, timeout: float = 10.0) -> None:
        """Until PING answers PONG (after AUTH when there is a password); fail at once if the process died."""
        request = b"PING\r\n"
        if self.password is not None:
            request = f"AUTH {self.password}\r\n".encode() + request
        proc = self._proc
        assert proc is not None

        def pong() -> bool:
            try:
                with self._connect() as sock:
                    sock.sendall(request)
                    reply = b""
                    while b"PONG" not in reply and not reply.startswith(b"-"):
                        chunk = sock.recv(256)
                        if not chunk:
                            break
                        reply += chunk
                    return b"PONG" in reply
            except OSError:
                return False  # not listening yet

        if wait_until(lambda: proc.poll() is not None or pong(), timeout, interval=0.02) and proc.poll() is None:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}; see {self.workdir}")
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} not ready after {timeout}s")

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server without a password, stopped after the test."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
