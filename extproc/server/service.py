"""The ext_proc service: one method, two passes told apart by stream metadata."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path

from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from extproc.config.model import GatewayConfig, socket_path
from extproc.contract import LISTENER_METADATA_KEY, OBSERVER_PASS, PASS_METADATA_KEY
from extproc.server.h2_server import BatchReads, GrpcServer
from extproc.server.observer_pass import Observations, ObserverPass
from extproc.server.router_pass import RouterPass
from extproc.server.upstream_pass import UpstreamPass
from extproc.state import GatewayState
from extproc.xds.render_credentials import secrets_dir
from extproc.xds.render_peer import read_token


class ExternalProcessor:
    def __init__(self, state: GatewayState, worker: int = 0) -> None:
        """`worker`: this process's index among the ext_proc's workers (its observer's)."""
        observations = Observations()
        self._router = RouterPass(state, observations=observations, worker=worker)
        self._upstream = UpstreamPass(state)
        self._observer = ObserverPass(observations)

    def process(
        self, metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse, None]:
        """The stream's pass itself, not a generator around it: each message goes through one (each
        pass counts itself in `gateway_active_streams`)."""
        named = metadata.get(PASS_METADATA_KEY)
        if named == "upstream":
            return self._upstream.process(requests)
        if named == OBSERVER_PASS:
            return self._observer.process(requests)
        return self._router.process(requests, metadata.get(LISTENER_METADATA_KEY, ""), metadata)


# The observer's connections are read every 10 ms: a stream's usage and time to first token are
# read up to that late, and the process wakes at most 100 times a second for all of them.
OBSERVER_BATCH_S = 0.01


def _observer_stream(metadata: Mapping[str, str]) -> bool:
    return metadata.get(PASS_METADATA_KEY) == OBSERVER_PASS


class ProcessorServer(GrpcServer):
    """The service on its address: a Unix socket only this uid may dial (Envoy runs as it in the sidecar),
    or a TCP port where a peer must show Envoy's token (server/peer.py)."""

    def __init__(self, state: GatewayState, address: str, token: str | None = None, worker: int = 0) -> None:
        """`worker`: the index of `address` among the workers' (its observer's mark)."""
        batch = BatchReads(_observer_stream, OBSERVER_BATCH_S)
        super().__init__(
            ExternalProcessor(state, worker).process,
            address,
            state.snapshot.config.extproc.busy_poll_us,
            token,
            batch=batch,
        )

    async def start(self) -> None:
        path = self._socket
        if path is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if path.is_socket():
                path.unlink()  # left by a process that did not stop cleanly
        await super().start()
        if path is not None:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)

    async def stop(self, grace_s: float | None) -> None:
        await super().stop(grace_s)
        if self._socket is not None:
            self._socket.unlink(missing_ok=True)

    @property
    def _socket(self) -> Path | None:
        path = socket_path(self.address)
        return Path(path) if path is not None else None


def peer_token(config: GatewayConfig) -> str | None:
    """The token Envoy was rendered with, for a TCP address; None on a Unix socket or when no Envoy
    configuration of this gateway's holds one (an Envoy set up elsewhere)."""
    return read_token(secrets_dir(Path(config.envoy.xds_dir))) if config.extproc.on_tcp else None


def build_server(state: GatewayState, address: str) -> ProcessorServer:
    return ProcessorServer(state, address, peer_token(state.snapshot.config))
