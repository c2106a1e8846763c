"""The upstream pass: an upstream HTTP filter of each provider cluster, run once per attempt.

It learns which provider Envoy picked from the endpoint's metadata (an
ext_proc attribute), then sets the provider's path and host and removes every
internal header. The provider's key is added after it by Envoy's credential
injector: this pass never sees or sends one. The body was already rewritten into the
provider's format by the router pass (named by `x-gw-body-format`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HeadersResponse,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.contract import (
    API_HEADER,
    ATTRIBUTES_KEY,
    BODY_FORMAT_HEADER,
    INTERNAL_PREFIX,
    MODEL_HEADER,
    PROVIDER_ATTRIBUTE,
    STREAM_HEADER,
)
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.formats.endpoint import Operation
from extproc.providers import kind_of, provider_format, upstream_path
from extproc.server import messages as m
from extproc.state import GatewayState

log = logging.getLogger(__name__)


class UpstreamPass:
    def __init__(self, state: GatewayState) -> None:
        self._state = state

    async def process(self, requests: AsyncIterator[ProcessingRequest]) -> AsyncIterator[ProcessingResponse]:
        async for message in requests:
            if message.WhichOneof("request") == "request_headers":
                try:
                    yield self.on_request_headers(message)
                except GatewayError as error:
                    yield _error(message, error)
                except Exception:
                    log.exception("upstream pass failed")
                    yield _error(
                        message, GatewayError("internal", "the gateway failed to prepare the provider request")
                    )
            else:
                yield ProcessingResponse()

    def on_request_headers(self, message: ProcessingRequest) -> ProcessingResponse:
        headers = m.headers_of(message.request_headers)
        attributes = message.attributes.get(ATTRIBUTES_KEY)
        name = attributes.fields[PROVIDER_ATTRIBUTE].string_value if attributes else ""
        provider = self._state.snapshot.config.provider(name)
        if provider is None:
            raise GatewayError("internal", f"no provider named {name!r} for this endpoint")
        if headers.get(BODY_FORMAT_HEADER) != provider_format(provider):
            # Only a cross-format failover gets here; pools that mix formats are not built yet.
            raise GatewayError("internal", f"request body is not in {provider.name}'s format")
        api = headers.get(API_HEADER, "openai.chat")
        operation: Operation = "embeddings" if api.endswith(".embeddings") else "chat"
        path = upstream_path(provider, operation, headers.get(MODEL_HEADER, ""), headers.get(STREAM_HEADER) == "1")
        set_headers = [(":path", path), (":authority", provider.authority)]  # the key is Envoy's to add
        # A kind's fixed headers (anthropic-version), unless a same-API client's own was kept.
        set_headers += [(name, value) for name, value in kind_of(provider).fixed_headers if name not in headers]
        # Envoy's own x-envoy-* (expected timeout, external address) are added after the router pass: cut here.
        remove = [k for k in headers if k.startswith((INTERNAL_PREFIX, "x-envoy-"))]
        common = m.common(set_headers=set_headers, remove=remove)
        return ProcessingResponse(request_headers=HeadersResponse(response=common))


def _error(message: ProcessingRequest, error: GatewayError) -> ProcessingResponse:
    """An answer in the client's own error format (its API travels in `x-gw-api`)."""
    headers = m.headers_of(message.request_headers)
    client_format = headers.get(API_HEADER, "openai.chat").partition(".")[0]
    body = FORMATS.get(client_format, FORMATS["openai"]).render_error(error, headers.get("x-request-id", ""))
    return m.immediate(error.status, body, [("content-type", "application/json")])
