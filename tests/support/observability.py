"""The shipped Grafana dashboard and Prometheus alert rules, read for tests: their PromQL queries
(Grafana's variables filled in as a Prometheus would see them) and the metric names they read."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "gateway.json"
ALERT_RULES = REPO / "deploy" / "prometheus" / "alerts.yml"

# Grafana's built-in variables, as a query sent for the last 6 hours would have them.
_BUILT_IN = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_expressions(board: dict[str, Any] | None = None) -> list[str]:
    """Each target's expr as written (with Grafana variables)."""
    return [target["expr"] for panel in panels(board or dashboard()) for target in panel.get("targets", [])]


def variables_used(expr: str) -> set[str]:
    return {name for pair in _VARIABLE.findall(expr) for name in pair if name and not name.startswith("__")}


def as_sent(expr: str) -> str:
    """The query Grafana sends: built-in intervals given values, a multi-value variable at "All" (`.*`)."""
    for name, value in _BUILT_IN.items():
        expr = expr.replace(name, value)
    return _VARIABLE.sub(".*", expr)


def rule_expressions() -> list[str]:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def selector_names(expr: str) -> set[str]:
    """The metric names of every series selector in a PromQL expression; a selector without a
    literal name (matched by a `__name__` regex) cannot be checked and fails the test."""
    names: set[str] = set()
    pending: list[Any] = [promql_parser.parse(expr)]
    while pending:
        node = pending.pop()
        kind = type(node).__name__
        if kind == "VectorSelector":
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)
        elif kind == "MatrixSelector":
            pending.append(node.vector_selector)
        elif kind == "BinaryExpr":
            pending += [node.lhs, node.rhs]
        elif kind == "Call":
            pending += list(node.args)
        elif kind == "AggregateExpr":
            pending.append(node.expr)
            if node.param is not None:
                pending.append(node.param)
        elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
            pending.append(node.expr)
    return names


def metric_names_used() -> set[str]:
    """Every metric name the dashboard's queries and variables and the alert rules read."""
    board = dashboard()
    queries = [as_sent(expr) for expr in dashboard_expressions(board)] + rule_expressions()
    names = {name for expr in queries for name in selector_names(expr)}
    for variable in board["templating"]["list"]:
        found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable.get("definition", ""))
        if found:
            names.add(found.group(1))
    return names


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not found: install Debian's prometheus package (the Makefile and CI do)")
    return binary
