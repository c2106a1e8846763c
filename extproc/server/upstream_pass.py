"""The upstream pass: an upstream HTTP filter of each provider cluster, run once per attempt.

It learns which provider Envoy picked from the endpoint's metadata (an
ext_proc attribute), then sets the provider's path and host and removes every
internal header. The provider's key is added after it by Envoy's credential
injector: this pass never sees or sends one. For a single provider the body was already rewritten into the
provider's format by the router pass (named by `x-gw-body-format`). For a
pooled route it arrives as the client sent it and is rendered here, attempt
by attempt, for the provider Envoy picked (`pool_attempt`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyResponse,
    HeadersResponse,
    ProcessingRequest,
    ProcessingResponse,
)
from google.protobuf.struct_pb2 import Struct

from extproc.config.model import Provider
from extproc.contract import (
    API_HEADER,
    ATTEMPT_PROVIDER_HEADER,
    ATTRIBUTES_KEY,
    BODY_FORMAT_HEADER,
    CLIENT_PATH_KEY,
    INTERNAL_PREFIX,
    MODEL_HEADER,
    POOL_KEY,
    PROVIDER_ATTRIBUTE,
    REQUEST_METADATA_NAMESPACE,
    STREAM_HEADER,
    STREAM_KEY,
)
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.formats.endpoint import Operation
from extproc.providers import kind_of, provider_format, upstream_path
from extproc.server import messages as m
from extproc.server.attempt_outcome import AttemptOutcome
from extproc.server.pool_attempt import PoolAttempt
from extproc.state import GatewayState

log = logging.getLogger(__name__)


class UpstreamPass:
    def __init__(self, state: GatewayState) -> None:
        self._state = state

    async def process(self, requests: AsyncIterator[ProcessingRequest]) -> AsyncIterator[ProcessingResponse]:
        outcome = AttemptOutcome(self._state.breakers, self._state.snapshot.config.breakers)
        try:
            async for message in requests:
                try:
                    yield self._handle(message, outcome)
                except GatewayError as error:
                    outcome.abandon()
                    yield _error(outcome.headers, error)
                except Exception:
                    log.exception("upstream pass failed")
                    outcome.abandon()
                    failed = GatewayError("internal", "the gateway failed to prepare the provider request")
                    yield _error(outcome.headers, failed)
        finally:
            outcome.ended()

    def _handle(self, message: ProcessingRequest, outcome: AttemptOutcome) -> ProcessingResponse:
        kind = message.WhichOneof("request")
        if kind == "request_headers":
            outcome.headers = headers = m.headers_of(message.request_headers)
            provider = self._provider(message)
            outcome.started(provider, headers)
            facts = message.metadata_context.filter_metadata.get(REQUEST_METADATA_NAMESPACE)
            if facts is not None and POOL_KEY in facts.fields:
                outcome.attempt = attempt = self._pool_attempt(provider, facts)
                return self._pool_headers(attempt, headers)
            return self.on_request_headers(provider, headers)
        if kind == "request_body" and outcome.attempt is not None:
            return _pool_body(outcome.attempt, message.request_body.body)
        if kind == "response_headers":
            outcome.answered(m.headers_of(message.response_headers))
            return m.CONTINUE_RESPONSE_HEADERS
        return ProcessingResponse()

    def _provider(self, message: ProcessingRequest) -> Provider:
        attributes = message.attributes.get(ATTRIBUTES_KEY)
        name = attributes.fields[PROVIDER_ATTRIBUTE].string_value if attributes else ""
        provider = self._state.snapshot.config.provider(name)
        if provider is None:
            raise GatewayError("internal", f"no provider named {name!r} for this endpoint")
        return provider

    def _pool_attempt(self, provider: Provider, facts: Struct) -> PoolAttempt:
        fields = facts.fields
        return PoolAttempt.of(
            self._state.snapshot.config,
            provider,
            fields[POOL_KEY].string_value,
            fields[CLIENT_PATH_KEY].string_value,
            fields[STREAM_KEY].bool_value,
        )

    def _pool_headers(self, attempt: PoolAttempt, headers: dict[str, str]) -> ProcessingResponse:
        """Name the attempt's provider (its credential injector matches on it); the path waits for the body."""
        provider = attempt.provider
        set_headers = [(":authority", provider.authority), (ATTEMPT_PROVIDER_HEADER, provider.name)]
        set_headers += [(name, value) for name, value in kind_of(provider).fixed_headers if name not in headers]
        remove = [k for k in headers if k.startswith((INTERNAL_PREFIX, "x-envoy-"))]
        remove += attempt.headers_to_remove(headers)
        return ProcessingResponse(request_headers=HeadersResponse(response=m.common(set_headers, remove)))

    def on_request_headers(self, provider: Provider, headers: dict[str, str]) -> ProcessingResponse:
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


def _pool_body(attempt: PoolAttempt, body: bytes) -> ProcessingResponse:
    rendered = attempt.render(body)
    # Always the length: an earlier attempt's length stays on the request (measured), its body does not.
    length = len(rendered.body if rendered.body is not None else body)
    set_headers = [(":path", rendered.path), ("content-length", str(length)), ("content-type", "application/json")]
    return ProcessingResponse(request_body=BodyResponse(response=m.common(set_headers, body=rendered.body)))


def _error(headers: dict[str, str], error: GatewayError) -> ProcessingResponse:
    """An answer in the client's own error format (its API travels in `x-gw-api`)."""
    client_format = headers.get(API_HEADER, "openai.chat").partition(".")[0]
    body = FORMATS.get(client_format, FORMATS["openai"]).render_error(error, headers.get("x-request-id", ""))
    return m.immediate(error.status, body, [("content-type", "application/json")])
