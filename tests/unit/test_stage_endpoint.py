"""EndpointStage driven alone with an Exchange: which client API a request speaks, the headers a
client may never send, and the errors for a path the gateway does not serve or a missing body."""

from __future__ import annotations

import asyncio

import pytest

from extproc.errors import GatewayError
from extproc.formats.endpoint import Endpoint
from extproc.pipeline.endpoint import EndpointStage
from extproc.pipeline.exchange import Exchange, PhaseReply
from tests.support.exchanges import at_headers, snapshot

SNAPSHOT = snapshot()


def run(ex: Exchange, end_of_stream: bool = False) -> PhaseReply:
    reply = PhaseReply()
    assert asyncio.run(EndpointStage().request_headers(ex, reply, end_of_stream)) is None
    return reply


@pytest.mark.parametrize(
    ("method", "path", "headers", "endpoint"),
    [
        ("POST", "/v1/chat/completions", {}, Endpoint("openai", "chat")),
        ("POST", "/v1/messages", {"anthropic-version": "2023-06-01"}, Endpoint("anthropic", "chat")),
        ("POST", "/v1/embeddings", {}, Endpoint("openai", "embeddings")),
        (
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            {},
            Endpoint("gemini", "chat", "gemini-2.5-flash", stream=True, sse=True),
        ),
        ("GET", "/v1/models", {"anthropic-version": "2023-06-01"}, Endpoint("anthropic", "models")),
        ("GET", "/v1/models?key=k", {}, Endpoint("gemini", "models")),
    ],
    ids=[
        "openai-chat",
        "anthropic-messages",
        "openai-embeddings",
        "gemini-stream",
        "anthropic-models",
        "gemini-models",
    ],
)
def test_a_served_path_is_classified_and_errors_are_answered_in_its_api(
    method: str, path: str, headers: dict[str, str], endpoint: Endpoint
) -> None:
    ex = at_headers(SNAPSHOT, path, headers, method=method)
    run(ex, end_of_stream=method == "GET")
    assert ex.endpoint == endpoint
    assert ex.error_format == endpoint.format


def test_internal_and_envoy_steering_headers_from_the_client_are_removed() -> None:
    ex = at_headers(
        SNAPSHOT,
        headers={
            "x-gw-cluster": "provider_openai",
            "x-envoy-max-retries": "10",
            "x-envoy-upstream-rq-timeout-ms": "1",
            "x-request-id": "rid-1",
            "content-type": "application/json",
        },
    )
    reply = run(ex)
    assert sorted(reply.remove_headers) == ["x-envoy-max-retries", "x-envoy-upstream-rq-timeout-ms", "x-gw-cluster"]
    assert reply.set_headers == [] and reply.body is None


def test_the_client_address_is_the_one_envoy_trusts() -> None:
    ex = at_headers(SNAPSHOT, headers={"x-envoy-external-address": "192.0.2.7", "x-forwarded-for": "203.0.113.9"})
    run(ex)
    assert ex.client_address == "192.0.2.7"


@pytest.mark.parametrize(
    ("path", "headers", "error_format"),
    [
        ("/v1/completions", {}, "openai"),
        ("/v1/complete", {"x-api-key": "k"}, "anthropic"),
        ("/v1beta/models/gemini-2.5-flash:countTokens", {}, "gemini"),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_an_unknown_path_is_a_404_in_the_api_the_client_seems_to_speak(
    path: str, headers: dict[str, str], error_format: str
) -> None:
    ex = at_headers(SNAPSHOT, path, headers)
    with pytest.raises(GatewayError) as refused:
        run(ex)
    assert refused.value.kind == "not_found" and refused.value.status == 404
    assert path.partition("?")[0] in refused.value.message
    assert ex.endpoint is None and ex.error_format == error_format


def test_a_chat_request_without_a_body_is_refused_at_its_headers() -> None:
    ex = at_headers(SNAPSHOT)
    with pytest.raises(GatewayError) as refused:
        run(ex, end_of_stream=True)
    assert refused.value.kind == "invalid_request" and "body is required" in refused.value.message


def test_a_model_listing_needs_no_body() -> None:
    ex = at_headers(SNAPSHOT, "/v1/models", method="GET")
    run(ex, end_of_stream=True)
    assert ex.endpoint == Endpoint("openai", "models")
