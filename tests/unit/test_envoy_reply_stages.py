"""The stages that meet Envoy's own replies, each driven alone with an Exchange: the endpoint stage
refuses headers over the gateway's limits in the client's format, and the answer stage renders
Envoy's replies (a provider's reset, garbage, timeout; a body over the buffer) in the gateway's words."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from extproc.config.load import load_text
from extproc.contract import HEADER_BYTES_LIMIT, HEADER_COUNT_LIMIT
from extproc.errors import GatewayError
from extproc.pipeline.answer import AnswerStage
from extproc.pipeline.endpoint import OPENAI_CHAT, EndpointStage
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.state import GatewayState

SNAPSHOT = GatewayState(load_text("providers: [{name: m, kind: mock}]", {}, Path("."))).snapshot
ANTHROPIC = {":method": "POST", ":path": "/v1/messages", "anthropic-version": "2023-06-01"}


def endpoint_outcome(headers: dict[str, str], header_bytes: int) -> tuple[Exchange, GatewayError | None]:
    ex = Exchange(SNAPSHOT, headers=headers, path=headers[":path"], header_bytes=header_bytes)
    try:
        asyncio.run(EndpointStage().request_headers(ex, PhaseReply(), False))
    except GatewayError as error:
        return ex, error
    return ex, None


@pytest.mark.parametrize(
    ("extra", "size"),
    [({}, HEADER_BYTES_LIMIT + 1), ({f"x-{i}": "v" for i in range(HEADER_COUNT_LIMIT)}, 2000)],
    ids=["bytes", "count"],
)
def test_headers_over_the_limits_are_a_431_in_the_clients_format(extra: dict[str, str], size: int) -> None:
    ex, error = endpoint_outcome({**ANTHROPIC, **extra}, size)
    assert error is not None and error.kind == "headers_too_large" and error.status == 431
    assert ex.error_format == "anthropic"


def test_headers_within_the_limits_go_on() -> None:
    assert endpoint_outcome(ANTHROPIC, HEADER_BYTES_LIMIT)[1] is None


def envoy_reply(status: int, text: bytes) -> dict:
    ex = Exchange(SNAPSHOT, request_id="rid-1", endpoint=OPENAI_CHAT, error_format="openai")
    stage, reply = AnswerStage(), PhaseReply()
    stage.response_headers(ex, reply, {":status": str(status), "content-type": "text/plain"})
    stage.response_body(ex, reply, text, True)
    assert reply.body is not None and (":status", str(ex.status)) in reply.set_headers
    return {"status": ex.status, **orjson.loads(reply.body)["error"]}


RESET = b"upstream connect error or disconnect/reset before headers. "


@pytest.mark.parametrize(
    ("status", "text", "expected", "code", "words"),
    [
        (503, RESET + b"reset reason: connection termination", 503, "provider_unavailable", "closed the connection"),
        (
            503,
            RESET + b"retried and the latest reset reason: connection failure",
            503,
            "provider_unavailable",
            "reached",
        ),
        (502, RESET + b"reset reason: protocol error", 502, "provider_error", "not valid HTTP (protocol error)"),
        (503, b"no healthy upstream", 503, "provider_unavailable", "unreachable (no healthy upstream)"),
        (504, b"upstream request timeout", 504, "provider_timeout", "did not answer in time"),
        (413, b"Payload Too Large", 413, "request_too_large", "larger than the gateway accepts"),
    ],
)
def test_envoys_replies_are_rendered_in_the_gateways_words(
    status: int, text: bytes, expected: int, code: str, words: str
) -> None:
    error = envoy_reply(status, text)
    assert (error["status"], error["code"]) == (expected, code)
    assert words in error["message"] and "upstream connect error" not in error["message"]
    assert error["message"].endswith("(request id: rid-1)")
