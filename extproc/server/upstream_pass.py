"""The upstream pass: an upstream HTTP filter of each pool's cluster, run once per attempt.

A route with one provider has none: the router pass sets the provider's path
and host itself (one gRPC stream per request). A pool's attempt learns which
provider Envoy picked from the endpoint's metadata (an ext_proc attribute)
and the request's facts from the router pass's dynamic metadata, then sets
that provider's path and host and renders the client's body for it
(`pool_attempt`), so a failover may cross formats. The provider's key is
added after it by Envoy's credential injector: this pass never sees or sends
one. With breakers on, each attempt's answer status comes back here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator

from envoy.service.ext_proc.v3.external_processor_pb2 import (
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.config.model import Provider
from extproc.contract import (
    ATTEMPT_PROVIDER_HEADER,
    ATTRIBUTES_KEY,
    CLIENT_PATH_KEY,
    INTERNAL_PREFIX,
    POOL_KEY,
    PROVIDER_ATTRIBUTE,
    READ_AT_KEY,
    REQUEST_METADATA_NAMESPACE,
    STREAM_KEY,
)
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.observe.logs import bind_request_id
from extproc.observe.metrics import ACTIVE_STREAMS
from extproc.pipeline.endpoint import classify
from extproc.providers.rendering import fixed_headers
from extproc.server import messages as m
from extproc.server.attempt_outcome import AttemptOutcome
from extproc.server.pool_attempt import PoolAttempt
from extproc.state import GatewayState
from extproc.xds.minted_tokens import require_live_token
from extproc.xds.pool_timeouts import PoolTimeouts

log = logging.getLogger(__name__)


class UpstreamPass:
    def __init__(self, state: GatewayState) -> None:
        self._state = state
        self._active = ACTIVE_STREAMS.labels("upstream")

    async def process(self, requests: AsyncIterator[ProcessingRequest]) -> AsyncGenerator[ProcessingResponse, None]:
        outcome = AttemptOutcome(self._state.breakers, self._state.snapshot.config.breakers)
        self._active.inc()
        try:
            async for message in requests:
                try:
                    yield self._handle(message, outcome)
                except GatewayError as error:
                    outcome.abandon()
                    yield _error(outcome, error)
                except Exception:
                    log.exception("upstream pass failed")
                    outcome.abandon()
                    failed = GatewayError("internal", "the gateway failed to prepare the provider request")
                    yield _error(outcome, failed)
                if self._last_message(message):
                    break  # the attempt is answered: the stream ends
        finally:
            try:
                outcome.ended()
            finally:
                self._active.dec()  # last: a stream counted out has made all its metrics

    def _last_message(self, message: ProcessingRequest) -> bool:
        """The answer's headers come only with breakers (each attempt's status is reported);
        without them the request's body is the last (its headers, for a request without one)."""
        kind = message.WhichOneof("request")
        if kind == "response_headers":
            return True
        if self._state.snapshot.config.breakers is not None:
            return False
        return kind == "request_body" or (kind == "request_headers" and message.request_headers.end_of_stream)

    def _handle(self, message: ProcessingRequest, outcome: AttemptOutcome) -> ProcessingResponse:
        kind = message.WhichOneof("request")
        if kind == "request_headers":
            outcome.headers = headers = m.headers_of(message.request_headers)
            bind_request_id(headers.get("x-request-id", ""))  # for lines logged while this attempt is prepared
            facts = message.metadata_context.filter_metadata.get(REQUEST_METADATA_NAMESPACE)
            if facts is None or POOL_KEY not in facts.fields:
                raise GatewayError("internal", "an upstream attempt without its pooled route")
            client_path = facts.fields[CLIENT_PATH_KEY].string_value
            endpoint = classify("POST", client_path, {})
            outcome.client_format = endpoint.format if endpoint else "openai"
            provider = self._provider(message)
            outcome.started(provider, headers)
            config, route_name = self._state.snapshot.config, facts.fields[POOL_KEY].string_value
            stream = facts.fields[STREAM_KEY].bool_value
            outcome.attempt = attempt = PoolAttempt.of(
                config, provider, route_name, endpoint, stream, client_path, headers
            )
            route = config.route(route_name)
            if config.breakers is not None and route is not None:
                outcome.bounded_by(PoolTimeouts.for_route(config, route), facts.fields[READ_AT_KEY].number_value)
            return self._pool_headers(attempt, headers)
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

    def _pool_headers(self, attempt: PoolAttempt, headers: dict[str, str]) -> ProcessingResponse:
        """Name the attempt's provider (its credential injector matches on it); the path waits for the body."""
        provider = attempt.provider
        require_live_token(provider, self._state.snapshot.config.envoy.xds_dir)
        set_headers = [(":authority", provider.authority), (ATTEMPT_PROVIDER_HEADER, provider.name)]
        set_headers += fixed_headers(provider, attempt.endpoint.format, headers, attempt.model or "")
        remove = [k for k in headers if k.startswith((INTERNAL_PREFIX, "x-envoy-"))]
        remove += attempt.headers_to_remove(headers)
        return m.reply("request_headers", set_headers, remove)


def _pool_body(attempt: PoolAttempt, body: bytes) -> ProcessingResponse:
    rendered = attempt.render(body)
    # Always the length: an earlier attempt's length stays on the request (measured), its body does not.
    length = len(rendered.body if rendered.body is not None else body)
    set_headers = [(":path", rendered.path), ("content-length", str(length)), ("content-type", "application/json")]
    return m.reply("request_body", set_headers, body=rendered.body)


def _error(outcome: AttemptOutcome, error: GatewayError) -> ProcessingResponse:
    """An answer in the client's own error format (the attempt knows the client's API)."""
    body = FORMATS[outcome.client_format].render_error(error, outcome.headers.get("x-request-id", ""))
    return m.immediate(error.status, body, [("content-type", "application/json"), *error.headers])
