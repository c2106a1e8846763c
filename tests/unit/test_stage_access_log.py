"""AccessLogStage driven alone with an Exchange: once per request, whatever happened, one access
line and the request's metrics, with label values from the configuration only.

tests/integration/test_metrics.py reads the same through the real Envoy.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from extproc.auth.identity import Identity
from extproc.formats.canonical import Usage
from extproc.observe.logs import monotonic
from extproc.pipeline.access_log import AccessLogStage
from extproc.pipeline.exchange import Exchange
from tests.support.exchanges import PROVIDERS, at_body, at_headers, chat, snapshot

SNAPSHOT = snapshot(
    PROVIDERS.replace("api_key_env: OPENAI_KEY}", "api_key_env: OPENAI_KEY, models: [gpt-known]}")
    + """
routes:
  - {name: chat, model: "gpt-*", provider: openai}
"""
)
ALICE = Identity("alice", "acme", labels={"team": "search"}, method="api_key")


def requests(model: str, status: str) -> float:
    labels = {"client_api": "openai", "route": "chat", "provider": "openai", "model": model, "status": status}
    return REGISTRY.get_sample_value("gateway_requests_total", labels) or 0.0


def tokens(kind: str, model: str = "gpt-known") -> float:
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": model,
        "gen_ai_response_model": "",
        "route": "chat",
        "provider": "openai",
        "client_api": "openai",
        "gen_ai_token_type": kind,
    }
    return REGISTRY.get_sample_value("gen_ai_client_token_usage_sum", labels) or 0.0


def answered(model: str = "gpt-known", status: int = 200, usage: Usage | None = None, **fields: object) -> Exchange:
    ex, _ = at_body(SNAPSHOT, chat(model, stream=bool(fields.pop("stream", False))), identity=ALICE)
    ex.status, ex.answered, ex.usage = status, True, usage
    for name, value in fields.items():
        setattr(ex, name, value)
    return ex


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The access lines written, as records (their fields are the record's attributes)."""
    caplog.set_level(logging.INFO, logger="extproc.access")
    return caplog


def lines(log: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [record.__dict__ for record in log.records if record.name == "extproc.access"]


def test_a_request_is_counted_once_by_its_configured_labels(log: pytest.LogCaptureFixture) -> None:
    before = requests("gpt-known", "200")
    AccessLogStage().finish(answered())
    assert requests("gpt-known", "200") == before + 1
    (line,) = lines(log)
    assert (
        line.items()
        >= {
            "request_id": "rid-1",
            "client": "alice",
            "tenant": "acme",
            "labels": {"team": "search"},
            "route": "chat",
            "provider": "openai",
            "model": "gpt-known",
            "status": 200,
        }.items()
    )


def test_a_model_the_configuration_does_not_name_is_labelled_other(log: pytest.LogCaptureFixture) -> None:
    before = requests("other", "200")
    AccessLogStage().finish(answered("gpt-made-up-by-the-client"))
    assert requests("other", "200") == before + 1
    assert lines(log)[0]["model"] == "gpt-made-up-by-the-client"  # the line says what was asked


def test_a_client_that_hung_up_is_client_closed(log: pytest.LogCaptureFixture) -> None:
    ex = answered()
    ex.answered, ex.status = False, 0
    before = requests("gpt-known", "client_closed")
    AccessLogStage().finish(ex)
    assert requests("gpt-known", "client_closed") == before + 1
    assert lines(log)[0]["status"] == 499


def test_the_providers_tokens_are_counted_by_type_and_a_cache_hit_costs_none(log: pytest.LogCaptureFixture) -> None:
    usage = Usage(input_tokens=30, output_tokens=12, cached_tokens=10, reasoning_tokens=4)
    before = {kind: tokens(kind) for kind in ("input", "output", "cached", "reasoning")}
    AccessLogStage().finish(answered(usage=usage))
    assert {kind: tokens(kind) - before[kind] for kind in before} == {
        "input": 30,
        "output": 12,
        "cached": 10,
        "reasoning": 4,
    }
    assert (lines(log)[0]["input_tokens"], lines(log)[0]["output_tokens"]) == (30, 12)
    after = {kind: tokens(kind) for kind in before}
    AccessLogStage().finish(answered(usage=usage, cache_status="HIT"))
    assert {kind: tokens(kind) for kind in before} == after
    assert lines(log)[1]["cache"] == "HIT" and lines(log)[1]["input_tokens"] is None


def test_time_to_first_token_is_observed_on_a_successful_stream_only() -> None:
    def first_tokens() -> float:
        labels = {
            "gen_ai_operation_name": "chat",
            "gen_ai_provider_name": "openai",
            "gen_ai_request_model": "gpt-known",
            "gen_ai_response_model": "",
            "route": "chat",
            "provider": "openai",
            "client_api": "openai",
        }
        return REGISTRY.get_sample_value("gen_ai_server_time_to_first_token_seconds_count", labels) or 0.0

    before = first_tokens()
    AccessLogStage().finish(answered(stream=True, usage=Usage(5, 8), first_output=monotonic()))
    assert first_tokens() == before + 1
    AccessLogStage().finish(answered(status=502, stream=True, first_output=monotonic()))
    assert first_tokens() == before + 1


def test_a_request_for_a_path_the_gateway_does_not_serve_is_counted_as_unknown() -> None:
    labels = {"client_api": "unknown", "route": "", "provider": "", "model": "", "status": "404"}
    before = REGISTRY.get_sample_value("gateway_requests_total", labels) or 0.0
    ex = at_headers(SNAPSHOT, "/v1/not-served")
    ex.status, ex.answered = 404, True
    AccessLogStage().finish(ex)
    assert REGISTRY.get_sample_value("gateway_requests_total", labels) == before + 1


def test_no_access_line_is_made_above_the_info_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="extproc.access")
    before = requests("gpt-known", "200")
    AccessLogStage().finish(answered())
    assert caplog.records == [] and requests("gpt-known", "200") == before + 1  # still counted
