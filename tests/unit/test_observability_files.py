"""The shipped Grafana dashboard (deploy/grafana/gateway.json) and Prometheus alert rules
(deploy/prometheus/alerts.yml), checked offline: the rules with promtool (syntax, lint, and the
alerts firing on sample series), the dashboard as a Grafana import file whose every query parses.
That each metric they read is one the gateway exports: tests/integration/test_dashboard_metrics.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.observability import (
    ALERT_RULES,
    as_sent,
    dashboard,
    dashboard_expressions,
    metric_names_used,
    panels,
    promtool,
    rule_expressions,
    selector_names,
    variables_used,
)


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)


def test_the_alert_rules_pass_promtool_check_with_every_lint() -> None:
    checked = run_promtool("check", "rules", "--lint=all", "--lint-fatal", str(ALERT_RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


def test_promtool_refuses_a_broken_rule_so_the_check_above_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])"}]}]}))
    checked = run_promtool("check", "rules", str(broken))
    assert checked.returncode != 0 and "parse error" in checked.stderr


def _series(name: str, values: str) -> dict[str, str]:
    return {"series": name, "values": values}


def test_the_alerts_fire_at_their_thresholds_and_not_below(tmp_path: Path) -> None:
    """promtool's rule unit tests: sample series in, the alerts expected at given times out. The
    rules are tested without their annotations (promtool would compare every rendered text)."""
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    bare = tmp_path / "alerts.yml"
    bare.write_text(yaml.safe_dump(rules))
    unit = {
        "rule_files": [str(bare)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # route a: 10% 5xx (60 of 600 a minute); route b: 1%
                    _series('gateway_requests_total{route="a",status="200"}', "0+540x30"),
                    _series('gateway_requests_total{route="a",status="502"}', "0+60x30"),
                    _series('gateway_requests_total{route="b",status="200"}', "0+594x30"),
                    _series('gateway_requests_total{route="b",status="500"}', "0+6x30"),
                    _series('gateway_budget_used_ratio{scope="tenant",name="t1"}', "0.5 0.79 0.8 0.9"),
                    _series('gateway_budget_used_ratio{scope="client",name="c1"}', "0.2 0.3 0.4 0.5"),
                    _series('gateway_breaker_transitions_total{provider="p1",to="opened"}', "0 0 1 1 1 1 1 1 1 1"),
                    _series('gateway_breaker_rejections_total{provider="p2"}', "0x10"),
                    # p3 opens at 2m, half-opens at 5m, closes at 6m: its opening transition is not scraped
                    _series('gateway_breaker_state{provider="p3"}', "0 0 2 2 2 1 0 0 0 0"),
                    _series('gateway_breaker_state{provider="p4"}', "0x10"),
                    _series('gateway_store_errors_total{operation="take"}', "0+3x20"),
                    _series('gateway_config_reloads_total{result="error"}', "0 0 1 1"),
                    _series('gateway_config_reloads_total{result="ok"}', "0 1 1 1"),
                    _series('gateway_keys_file_reloads_total{result="ok"}', "0 1 2 3"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "GatewayErrorRatioHigh",
                        "exp_alerts": [{"exp_labels": {"severity": "warning", "route": "a"}}],
                    },
                    {"eval_time": "1m", "alertname": "GatewayBudgetNearlySpent", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "GatewayBudgetNearlySpent",
                        "exp_alerts": [{"exp_labels": {"severity": "warning", "scope": "tenant", "name": "t1"}}],
                    },
                    {"eval_time": "3m", "alertname": "GatewayBudgetSpent", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "GatewayBreakerOpen",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning", "provider": "p1"}},
                            {"exp_labels": {"severity": "warning", "provider": "p3"}},
                        ],
                    },
                    {
                        "eval_time": "5m",  # p3 half-open: not open
                        "alertname": "GatewayBreakerOpen",
                        "exp_alerts": [{"exp_labels": {"severity": "warning", "provider": "p1"}}],
                    },
                    {"eval_time": "9m", "alertname": "GatewayBreakerOpen", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "GatewayStoreErrors",
                        "exp_alerts": [{"exp_labels": {"severity": "warning", "operation": "take"}}],
                    },
                    {
                        "eval_time": "3m",
                        "alertname": "GatewayConfigReloadFailed",
                        "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                    },
                    {"eval_time": "3m", "alertname": "GatewayKeysFileReloadFailed", "exp_alerts": []},
                ],
            }
        ],
    }
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(yaml.safe_dump(unit, sort_keys=False))
    result = run_promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_a_grafana_import_file() -> None:
    board = dashboard()
    for field in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        assert field in board, field
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    defined = {variable["name"] for variable in board["templating"]["list"]}
    assert "datasource" in defined
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert variables_used(target["expr"]) <= defined, (panel["title"], target["expr"])


def _overlapping(board: dict[str, Any]) -> list[tuple[str, str]]:
    cells: dict[tuple[int, int], str] = {}
    clashes = []
    for panel in panels(board):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    clashes.append((cells[(x, y)], panel["title"]))
                cells[(x, y)] = panel["title"]
    return clashes


def test_no_two_dashboard_panels_overlap() -> None:
    assert _overlapping(dashboard()) == []


def test_the_dashboard_shows_what_an_operator_asks_first() -> None:
    """Requests, errors, time to first token, tokens, cost and savings by route, provider and
    tenant, limit refusals, breakers and Envoy's upstream stats each have a query."""
    queries = " ".join(dashboard_expressions())
    for wanted in (
        "gateway_requests_total",
        'status!~"2.."',
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "gen_ai_client_token_usage_sum",
        "sum by (route) (rate(gateway_cost_usd_total",
        "sum by (tenant) (rate(gateway_cost_usd_total",
        "sum by (provider, model) (rate(gateway_cost_usd_total",
        "gateway_cost_saved_usd_total",
        'gateway_limit_decisions_total{decision="deny"}',
        "gateway_breaker_transitions_total",
        "gateway_breaker_state",
        "envoy_cluster_upstream_rq_total",
    ):
        assert wanted in queries, wanted


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    """Each query as Grafana sends it, through Prometheus's own parser (promtool, as recording
    rules) and through promql-parser (which the metric-name checks read)."""
    queries = [as_sent(expr) for expr in dashboard_expressions()]
    for expr in queries:
        assert selector_names(expr), expr
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries)]
    as_rules = tmp_path / "dashboard_queries.yml"
    as_rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = run_promtool("check", "rules", str(as_rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_metric_names_read_are_the_gateways_and_envoys() -> None:
    names = metric_names_used()
    assert all(name.startswith(("gateway_", "gen_ai_", "envoy_cluster_")) for name in names), names
    assert {selector for expr in rule_expressions() for selector in selector_names(expr)} <= names


def test_a_selector_without_a_metric_name_cannot_slip_past_the_name_check() -> None:
    with pytest.raises(AssertionError, match="without a metric name"):
        selector_names('sum(rate({__name__=~"gateway_.*"}[5m]))')
    assert selector_names("histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / on() b") == {"a_bucket", "b"}


def test_the_compose_prometheus_loads_the_alert_rules() -> None:
    repo = ALERT_RULES.parents[2]
    config = yaml.safe_load((repo / "deploy" / "prometheus.yml").read_text())
    compose = yaml.safe_load((repo / "docker-compose.yml").read_text())
    assert "./deploy/prometheus:/etc/prometheus/rules:ro" in compose["services"]["prometheus"]["volumes"]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    checked = run_promtool("check", "config", str(repo / "deploy" / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
