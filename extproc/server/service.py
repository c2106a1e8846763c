"""The gRPC ext_proc service: one servicer, two passes told apart by stream metadata."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from extproc.contract import LISTENER_METADATA_KEY, PASS_METADATA_KEY
from extproc.observe.metrics import ACTIVE_STREAMS
from extproc.server.router_pass import RouterPass
from extproc.server.stream_end import end_quietly
from extproc.server.upstream_pass import UpstreamPass
from extproc.state import GatewayState

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 10+ MB body (base64 images) in one buffered message


class ExternalProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):
    def __init__(self, state: GatewayState) -> None:
        self._router = RouterPass(state)
        self._upstream = UpstreamPass(state)
        self._router_streams = ACTIVE_STREAMS.labels("router")
        self._upstream_streams = ACTIVE_STREAMS.labels("upstream")

    async def Process(
        self, request_iterator: AsyncIterator[ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ProcessingResponse]:
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get(PASS_METADATA_KEY) == "upstream":
            gauge, responses = self._upstream_streams, self._upstream.process(request_iterator)
        else:
            listener = metadata.get(LISTENER_METADATA_KEY, "")
            gauge, responses = self._router_streams, self._router.process(request_iterator, str(listener))
        gauge.inc()
        try:
            async for response in responses:
                yield response
        finally:
            gauge.dec()
        await end_quietly(context)


def build_server(state: GatewayState, address: str) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(ExternalProcessor(state), server)
    server.add_insecure_port(address)  # binds now
    if address.startswith("unix:"):
        # Only this uid (Envoy runs as it in the sidecar) may dial the socket, whatever the umask.
        os.chmod(address.removeprefix("unix:"), 0o600)
    return server
