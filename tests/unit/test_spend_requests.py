"""What a request costs (extproc.pipeline.spend), driven with Exchanges as the stages leave them:
from the provider's own usage at the table in force on the snapshot, the kind a provider is priced
as, the estimate when no count came, a cache hit's saving, an unpriced model counted and logged
once, and the cost's metric labels bounded by the configuration. Figures are worked out by hand
from the default table's prices (USD per million tokens), shown beside each."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from extproc.auth.identity import Identity
from extproc.cache import codec
from extproc.config.load import ConfigError, load_text
from extproc.formats.assemble import StreamAssembler
from extproc.formats.canonical import ChatResponse, Choice, Usage
from extproc.pipeline.access_log import AccessLogStage
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.spend import FREE, billed_usage, format_usd, request_cost
from extproc.state import GatewayState, Snapshot
from tests.support.exchanges import CONFIG, PROVIDER_ENV, at_body, chat, snapshot

AZURE = """
  - {name: azure, kind: openai, base_url: "https://r.openai.azure.com", api_key_env: OPENAI_KEY,
     azure: {api_version: "2024-10-21"}}
  - {name: compat, kind: openai-compatible, base_url: "http://127.0.0.1:1/v1"}
"""
ROUTES = """
  - {model: "deploy-*", provider: azure}
  - {model: "local-*", provider: compat}
"""
BASE = snapshot(CONFIG.replace("\nroutes:", AZURE + "routes:" + ROUTES))


def answered(model: str, usage: Usage | None, snap: Snapshot = BASE, **fields: object) -> Exchange:
    ex, raw = at_body(snap, chat(model))
    ex.request_bytes = len(raw)
    ex.status, ex.answered, ex.usage = 200, True, usage
    for name, value in fields.items():
        setattr(ex, name, value)
    return ex


def unpriced(provider: str, model: str) -> float:
    return REGISTRY.get_sample_value("gateway_unpriced_requests_total", {"provider": provider, "model": model}) or 0.0


def cost_metric(name: str, route: str, provider: str, model: str, tenant: str) -> float:
    labels = {"route": route, "provider": provider, "model": model, "tenant": tenant}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_openai_answer_costs_its_fresh_cached_and_output_tokens_at_the_table_in_force() -> None:
    # gpt-4o-mini: 0.15 input, 0.075 cached, 0.6 output: 800 fresh + 200 cached + 50 output
    ex = answered("gpt-4o-mini", Usage(1000, 50, cached_tokens=200))
    cost = request_cost(ex)
    assert cost.priced
    assert cost.usd == pytest.approx((800 * 0.15 + 200 * 0.075 + 50 * 0.6) / 1e6)
    assert request_cost(ex) is cost  # computed once


def test_azure_is_priced_as_openai_by_the_answer_model_unless_priced_apart() -> None:
    # The deployment's name is no model: the answer's model (gpt-4o: 2.5 / 10) prices it.
    answer = ChatResponse("id", "gpt-4o-2024-08-06", 1, [Choice(0, "hi")], Usage(100, 10))
    ex = answered("deploy-a", answer.usage, answer=answer)
    assert request_cost(ex).usd == pytest.approx((100 * 2.5 + 10 * 10) / 1e6)
    apart = snapshot(_with_prices('  azure:\n    - {models: ["gpt-4o*"], input: 5, output: 20}\n'))
    ex = answered("deploy-a", answer.usage, snap=apart, answer=answer)
    assert request_cost(ex).usd == pytest.approx((100 * 5 + 10 * 20) / 1e6)


def _with_prices(block: str) -> str:
    return CONFIG.replace("\nroutes:", AZURE + "routes:" + ROUTES) + "prices:\n" + block


def test_the_mock_provider_is_free_unless_the_configuration_prices_it() -> None:
    before = unpriced("mock", "mock-1")
    assert request_cost(answered("mock-1", Usage(10, 5))) == FREE
    assert unpriced("mock", "mock-1") == before
    priced = snapshot(_with_prices("  mock:\n    - {models: [mock-1], input: 1, output: 2}\n"))
    assert request_cost(answered("mock-1", Usage(10, 5), snap=priced)).usd == pytest.approx((10 * 1 + 5 * 2) / 1e6)


def test_an_unpriced_model_costs_0_is_counted_each_time_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="extproc.pipeline.spend")
    before = unpriced("compat", "other")
    for _ in range(3):
        cost = request_cost(answered("local-llama-unpriced", Usage(10, 5)))
        assert (cost.usd, cost.priced) == (0.0, False)
    assert unpriced("compat", "other") == before + 3  # a model the config does not name is `other`
    logged = [r.getMessage() for r in caplog.records if "local-llama-unpriced" in r.getMessage()]
    assert len(logged) == 1 and "compat" in logged[0]


def test_a_configured_price_overrides_the_default_and_a_new_one_extends_it() -> None:
    snap = snapshot(
        _with_prices(
            "  openai:\n    - {models: [gpt-4o-mini], input: 1, output: 1}\n"
            '  openai-compatible:\n    - {models: ["local-*"], input: 0.5, output: 0.5}\n'
        )
    )
    assert request_cost(answered("gpt-4o-mini", Usage(1000, 0), snap=snap)).usd == pytest.approx(1000 / 1e6)
    assert request_cost(answered("local-x", Usage(1000, 1000), snap=snap)).usd == pytest.approx(1000 / 1e6)
    assert request_cost(answered("gpt-4o", Usage(1000, 0), snap=snap)).usd == pytest.approx(2500 / 1e6)  # default


def test_a_cache_hit_is_free_and_counts_what_the_answer_cost_when_stored_as_saved() -> None:
    ex = answered("gpt-4o-mini", Usage(1000, 50), cache_status="HIT", saved_usd=0.25)
    assert request_cost(ex) == FREE
    before = cost_metric("gateway_cost_saved_usd_total", "gpt-*", "openai", "other", "anonymous")
    spent = cost_metric("gateway_cost_usd_total", "gpt-*", "openai", "other", "anonymous")
    AccessLogStage().finish(ex)
    assert cost_metric("gateway_cost_saved_usd_total", "gpt-*", "openai", "other", "anonymous") == before + 0.25
    assert cost_metric("gateway_cost_usd_total", "gpt-*", "openai", "other", "anonymous") == spent


def test_the_cost_metric_labels_a_tokens_tenant_only_when_the_configuration_names_it() -> None:
    snap = snapshot(
        CONFIG + 'limits:\n  rules:\n    - {name: r, key: [], requests: 100, match: {tenants: ["jwt:known"]}}\n'
    )
    for tenant, label in (("jwt:known", "jwt:known"), ("jwt:made-up-7", "other")):
        ex = answered("gpt-4o", Usage(1000, 0), snap=snap, identity=Identity("jwt:c", tenant, method="jwt"))
        before = cost_metric("gateway_cost_usd_total", "gpt-*", "openai", "other", label)
        AccessLogStage().finish(ex)
        after = cost_metric("gateway_cost_usd_total", "gpt-*", "openai", "other", label)
        assert after == pytest.approx(before + 2500 / 1e6)
    ex = answered("gpt-4o", Usage(1000, 0), identity=Identity("alice", "acme", method="api_key"))
    AccessLogStage().finish(ex)
    assert cost_metric("gateway_cost_usd_total", "gpt-*", "openai", "other", "acme") > 0


def test_without_the_providers_count_a_cut_stream_is_billed_at_the_estimate() -> None:
    ex = answered("gpt-4o", None, assembler=StreamAssembler())
    ex.assembler.output_chars = 400  # type: ignore[union-attr]  # 100 tokens seen go by
    usage = billed_usage(ex)
    assert usage == Usage(max(1, ex.request_bytes // 4), 100)
    refused = answered("gpt-4o", None, status=429)
    assert billed_usage(refused) is None and request_cost(refused) == FREE


def test_a_token_count_costs_nothing() -> None:
    ex, _ = at_body(BASE, {"model": "claude-sonnet-4-5", "messages": []}, path="/v1/messages/count_tokens")
    ex.status, ex.answered = 200, True
    assert request_cost(ex) == FREE


def test_the_access_line_carries_the_cost(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="extproc.access")
    AccessLogStage().finish(answered("gpt-4o", Usage(1000, 100)))
    (line,) = [r.__dict__ for r in caplog.records if r.name == "extproc.access"]
    assert line["cost_usd"] == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    assert line["cost_saved_usd"] is None


def test_a_cost_is_written_in_plain_decimal_digits() -> None:
    assert format_usd(0.0) == "0"
    assert format_usd(0.000153) == "0.000153"
    assert format_usd(1.25) == "1.25"
    assert format_usd(3e-9) == "0.000000003"


def test_a_cache_entry_keeps_what_its_answer_cost_and_older_entries_read_as_0() -> None:
    answer = ChatResponse("id", "m", 1, [Choice(0, "hi", finish_reason="stop")], Usage(3, 4))
    entry = codec.decode_entry(codec.encode(answer, 0.00123))
    assert (entry.answer, entry.cost_usd) == (answer, 0.00123)
    assert codec.decode_entry(codec.encode(answer)).cost_usd == 0.0
    for forged in (b"$nan\n", b"$-1\n", b"$inf\n", b"$x\n"):
        with pytest.raises(ValueError):
            codec.decode_entry(forged + codec.encode(answer))


def test_prices_are_checked_at_load_with_their_paths() -> None:
    base = "providers: [{name: m, kind: mock}]\n"
    with pytest.raises(ConfigError) as bad:
        load_text(
            base + "prices: {openai: [{models: [x], input: -1, output: 1}, {models: [y], input: 1}]}", {}, Path(".")
        )
    assert bad.value.problems == [
        "prices.openai[0].input: -1 is less than the minimum of 0",
        "prices.openai[1]: 'output' is a required property",
    ]


def test_the_snapshot_holds_the_table_in_force_and_a_reload_replaces_it() -> None:
    state = GatewayState(load_text(CONFIG, PROVIDER_ENV, Path(".")))
    mini = state.snapshot.prices.lookup("openai", "gpt-4o-mini")
    assert mini is not None and mini.rates.input == 0.15
    state.swap(
        load_text(
            CONFIG + "prices: {openai: [{models: [gpt-4o-mini], input: 9, output: 9}]}\n", PROVIDER_ENV, Path(".")
        )
    )
    mini = state.snapshot.prices.lookup("openai", "gpt-4o-mini")
    assert mini is not None and mini.rates.input == 9


def test_a_provider_priced_as_another_key_uses_that_keys_prices() -> None:
    # An openai-compatible proxy in front of Bedrock: Nova Lite at 0.06 input / 0.24 output.
    config = CONFIG.replace(
        "\nroutes:",
        AZURE.replace('http://127.0.0.1:1/v1"}', 'http://127.0.0.1:1/v1", priced_as: bedrock}') + "routes:" + ROUTES,
    )
    snap = snapshot(config)
    ex = answered("local-nova", Usage(1000, 1000), snap=snap)
    assert ex.target is not None and ex.target.provider.priced_as == "bedrock"
    ex.target = replace(ex.target, upstream_model="amazon.nova-lite-v1:0")  # the route's upstream_model
    assert request_cost(ex).usd == pytest.approx((1000 * 0.06 + 1000 * 0.24) / 1e6)


def test_a_pools_answer_is_priced_at_the_model_its_answering_member_was_asked_for() -> None:
    pooled = CONFIG.replace(
        "\nroutes:",
        "\nroutes:\n  - {name: smart, model: smart, pool: [{provider: openai, model: gpt-4o},"
        " {provider: anthropic, model: claude-haiku-4-5, priority: 1}]}",
    )
    snap = snapshot(pooled)
    anthropic = snap.config.provider("anthropic")
    ex = answered("smart", Usage(1000, 100), snap=snap, answered_by=anthropic)
    assert request_cost(ex).usd == pytest.approx((1000 * 1 + 100 * 5) / 1e6)  # claude-haiku-4-5: 1 / 5
    ex = answered("smart", Usage(1000, 100), snap=snap, answered_by=snap.config.provider("openai"))
    assert request_cost(ex).usd == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)  # gpt-4o: 2.5 / 10
