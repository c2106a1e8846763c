"""ProviderHeadersStage driven alone with an Exchange: only the headers a provider's API needs go
to it (a same-API client's protocol headers included), and only headers that describe the answer
come back to the client."""

from __future__ import annotations

import asyncio

from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.provider_headers import ProviderHeadersStage
from tests.support.exchanges import CHAT_PATH, MESSAGES_PATH, at_body, chat, messages, snapshot

SNAPSHOT = snapshot()
CLIENT_HEADERS = {
    "content-type": "application/json",
    "content-length": "120",
    "accept": "application/json",
    "x-forwarded-proto": "http",
    "x-gw-cluster": "provider_openai",  # the router pass's own; the upstream side removes it
    "cookie": "session=secret",
    "openai-organization": "org-client",
    "openai-project": "proj-client",
    "x-forwarded-for": "203.0.113.9",
    "x-stainless-os": "Linux",
    "user-agent": "OpenAI/Python 2.0",
}


def to_provider(ex: Exchange, raw: bytes, reply: PhaseReply | None = None) -> PhaseReply:
    reply = reply or PhaseReply()
    assert asyncio.run(ProviderHeadersStage().request_body(ex, reply, raw)) is None
    return reply


def test_only_what_the_providers_api_needs_goes_to_it() -> None:
    ex, raw = at_body(SNAPSHOT, chat("gpt-4o"), CHAT_PATH, CLIENT_HEADERS)
    removed = set(to_provider(ex, raw).remove_headers)
    assert removed == {
        "cookie",
        "openai-organization",
        "openai-project",
        "x-forwarded-for",
        "x-stainless-os",
        "user-agent",
    }
    kept = set(ex.headers) - removed
    assert {":path", ":method", "x-request-id", "content-type", "x-gw-cluster", "x-forwarded-proto"} <= kept


def test_a_same_api_clients_protocol_headers_go_on_and_another_apis_stay_behind() -> None:
    anthropic_headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024", "openai-beta": "x"}
    ex, raw = at_body(SNAPSHOT, messages("claude-sonnet-4"), MESSAGES_PATH, anthropic_headers)
    assert set(to_provider(ex, raw).remove_headers) == {"openai-beta"}
    ex, raw = at_body(SNAPSHOT, chat("claude-sonnet-4"), CHAT_PATH, anthropic_headers)  # an OpenAI client
    assert set(to_provider(ex, raw).remove_headers) == {"anthropic-version", "anthropic-beta", "openai-beta"}


def test_a_header_another_stage_already_removes_is_not_named_twice() -> None:
    ex, raw = at_body(SNAPSHOT, chat("gpt-4o"), CHAT_PATH, {"cookie": "c", "authorization": "Bearer k"})
    reply = to_provider(ex, raw, PhaseReply(remove_headers=["authorization"]))
    assert sorted(reply.remove_headers) == ["authorization", "cookie"]


def test_only_headers_that_describe_the_answer_come_back() -> None:
    ex, _ = at_body(SNAPSHOT, chat("gpt-4o"))
    answer = {
        ":status": "200",
        "content-type": "application/json",
        "content-length": "300",
        "date": "Mon, 07 Dec 2026 10:00:00 GMT",
        "retry-after": "1",
        "x-request-id": "rid-1",
        "set-cookie": "__cf_bm=provider",
        "openai-organization": "org-operator",
        "x-ratelimit-remaining-tokens": "4000",
        "openai-processing-ms": "120",
        "cf-ray": "abc",
    }
    reply = PhaseReply()
    ProviderHeadersStage().response_headers(ex, reply, answer)
    assert set(reply.remove_headers) == {
        "set-cookie",
        "openai-organization",
        "x-ratelimit-remaining-tokens",
        "openai-processing-ms",
        "cf-ray",
    }
