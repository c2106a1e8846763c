"""A pooled attempt without an answer is the provider's failure only when one of the route's
timeouts, as rendered for Envoy, cut it; earlier, its client hung up."""

from __future__ import annotations

from pathlib import Path

from extproc.config.load import load_text
from extproc.xds.pool_timeouts import PoolTimeouts
from extproc.xds.render_filters import ms
from extproc.xds.render_pool import pool_route

PROVIDERS = """
providers:
  - {name: oa, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K, first_byte_timeout_ms: 4000}
  - {name: an, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K, timeout_ms: 90000}
  - {name: plain, kind: openai, base_url: "https://llm.internal/v1", api_key_env: K, timeout_ms: 60000}
routes:
"""


def timeouts_of(route: str) -> tuple[PoolTimeouts, dict]:
    config = load_text(PROVIDERS + route, {"K": "k"}, Path("."))
    (pooled,) = config.routes
    return PoolTimeouts.for_route(config, pooled), pool_route(config, pooled)


def test_the_timeouts_judged_are_the_ones_envoy_is_given() -> None:
    timeouts, action = timeouts_of(
        '  - {name: p, model: "*", pool: [{provider: oa}, {provider: an}], timeouts: {first_byte_ms: 2000, idle_ms: 900}}\n'
    )
    assert action["retry_policy"]["per_try_timeout"] == ms(timeouts.first_byte_ms)
    assert action["retry_policy"]["per_try_idle_timeout"] == ms(timeouts.attempt_idle_ms)
    assert action["timeout"] == ms(timeouts.total_ms) and timeouts.total_ms == 600_000
    assert action["idle_timeout"] == ms(timeouts.idle_ms) and timeouts.idle_ms == 2000 * 3 + 1000


def test_an_attempt_is_cut_by_the_sooner_of_its_first_byte_and_idle_timeouts() -> None:
    timeouts, _ = timeouts_of(
        '  - {name: p, model: "*", pool: [{provider: oa}, {provider: an}], timeouts: {first_byte_ms: 2000, idle_ms: 900}}\n'
    )
    assert not timeouts.cut_attempt(attempt_s=0.5, request_s=0.5)  # the client hung up
    assert timeouts.cut_attempt(attempt_s=0.9, request_s=0.9)
    assert timeouts.cut_attempt(attempt_s=0.87, request_s=3.0)  # within the timers' slack


def test_without_attempt_timeouts_only_the_routes_own_cut_an_attempt() -> None:
    timeouts, _ = timeouts_of(
        '  - {name: p, model: "*", pool: [{provider: an}, {provider: plain}], timeouts: {total_ms: 30000}}\n'
    )
    assert (timeouts.first_byte_ms, timeouts.attempt_idle_ms) == (None, None)
    assert not timeouts.cut_attempt(attempt_s=25.0, request_s=29.0)
    assert timeouts.cut_attempt(attempt_s=10.0, request_s=30.0)  # a later attempt, when the route's time ran out
    idle, _ = timeouts_of(
        '  - {name: p, model: "*", pool: [{provider: an}, {provider: plain}], timeouts: {idle_ms: 5000}}\n'
    )
    assert idle.total_ms == 90_000 and idle.cut_attempt(attempt_s=5.0, request_s=5.0)  # idle while it waited


def test_a_pool_without_first_byte_time_of_its_own_takes_its_most_patient_providers() -> None:
    timeouts, action = timeouts_of('  - {name: p, model: "*", pool: [{provider: oa}, {provider: an}]}\n')
    assert timeouts.first_byte_ms == 4000 and action["retry_policy"]["per_try_timeout"] == "4s"
    assert not timeouts.cut_attempt(attempt_s=3.0, request_s=3.0)
    assert timeouts.cut_attempt(attempt_s=4.0, request_s=4.0)
