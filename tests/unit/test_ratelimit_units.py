"""Rate-limit rule matching, bucket keys, estimates and the headers clients read."""

from __future__ import annotations

import httpx
import openai

from extproc.config.traffic import LimitMatch, LimitRule
from extproc.formats.canonical import ChatRequest, Message, TextPart
from extproc.ratelimit import estimate
from extproc.ratelimit.headers import duration, limit_headers, retry_headers, tightest
from extproc.ratelimit.rules import Subject, applies, bucket_key
from extproc.store.base import Decision

ALICE = Subject(client="alice", tenant="acme", provider="openai", model="gpt-4o", route="gpt")


def test_durations_are_written_the_way_openai_writes_them() -> None:
    assert duration(0.02) == "20ms"
    assert duration(1) == "1s"
    assert duration(1.5) == "1.5s"
    assert duration(360) == "6m0s"
    assert duration(3723) == "1h2m3s"
    assert duration(0) == "0ms"


def test_a_rule_applies_only_to_requests_matching_all_its_conditions() -> None:
    assert applies(LimitRule("r", ("client",)), ALICE)
    assert applies(LimitRule("r", (), LimitMatch(models=("gpt-*",), tenants=("acme",))), ALICE)
    assert not applies(LimitRule("r", (), LimitMatch(models=("claude-*",))), ALICE)
    assert not applies(LimitRule("r", (), LimitMatch(clients=("bob",))), ALICE)
    assert not applies(LimitRule("r", (), LimitMatch(providers=("gemini",))), ALICE)
    assert not applies(LimitRule("r", (), LimitMatch(routes=("other",))), ALICE)


def test_bucket_keys_name_the_rule_and_its_dimensions_and_cannot_be_forged() -> None:
    rule = LimitRule("per", ("client", "model"))
    assert bucket_key(rule, ALICE) == "per/client=alice/model=gpt-4o"
    assert bucket_key(LimitRule("all", ()), ALICE) == "all"
    forged = Subject("alice/model=gpt-4o", "acme", "openai", "x", "gpt")
    assert bucket_key(rule, forged) != bucket_key(rule, ALICE)


def test_tokens_reserved_are_the_input_estimate_plus_the_output_the_client_allows() -> None:
    request = ChatRequest("m", [Message("user", [TextPart("x")])], max_tokens=100)
    body = b"x" * 400
    assert estimate.reserve(body, request) == (100, 200)
    assert estimate.reserve(body, ChatRequest("m", [])) == (100, 100)
    assert estimate.reserve(body, ChatRequest("m", [], max_tokens=-(10**12))) == (100, 100)  # less than none: none
    assert estimate.input_tokens(b"") == 1


def test_the_tightest_bucket_is_the_one_reported() -> None:
    roomy = Decision(True, 100, 90, 5.0, 0.0)
    tight = Decision(True, 10, 2, 50.0, 0.0)
    assert tightest([roomy, tight]) is tight
    assert tightest([]) is None


def test_the_openai_sdk_reads_the_retry_headers_and_the_limit_headers_are_openais() -> None:
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    assert client._parse_retry_after_header(httpx.Headers(retry_headers(2.5))) == 2.5
    assert dict(retry_headers(2.5))["retry-after"] == "3"  # whole seconds, rounded up
    headers = dict(limit_headers("tokens", Decision(True, 1000, 400, 36.0, 0.0)))
    assert headers == {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "36s",
    }
