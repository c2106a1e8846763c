"""gateway.yaml's `store`, `limits` and `cache` sections, and the listener's local rate limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.app.restart import restart_required
from extproc.config.load import ConfigError, load_text
from extproc.config.model import GatewayConfig
from extproc.xds.render import render_listeners

BASE = """
providers:
  - {name: mock, kind: mock}
routes:
  - {model: "*", provider: mock}
"""


def load(extra: str, env: dict[str, str] | None = None, base: Path = Path(".")) -> GatewayConfig:
    return load_text(BASE + extra, env or {}, base)


def problems_of(extra: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(extra, env)
    return raised.value.problems


def test_limits_cache_and_redis_settings_load_typed(tmp_path: Path) -> None:
    (tmp_path / "redis-password").write_text("s3cret\n")
    config = load(
        """
store: {backend: redis, redis: {url: "redis://127.0.0.1:6379/0", password_file: redis-password, timeout_ms: 100}}
limits:
  on_store_error: deny
  rules:
    - {name: per-client, key: [client, model], match: {models: ["gpt-*"]}, requests: 5, tokens: 100, window_s: 10}
cache: {scope: client, chat_ttl_s: 30, max_entries: 5}
""",
        base=tmp_path,
    )
    assert config.store.redis is not None and config.store.redis.password == "s3cret"
    assert "s3cret" not in repr(config.store)
    (rule,) = config.limits.rules
    assert rule.key == ("client", "model") and rule.match.models == ("gpt-*",) and rule.window_s == 10
    assert config.limits.on_store_error == "deny"
    assert config.cache.enabled and config.cache.scope == "client" and config.cache.max_entries == 5


def test_without_the_sections_nothing_is_limited_or_cached() -> None:
    config = load("")
    assert config.limits.rules == () and not config.cache.enabled and config.store.backend == "memory"


def test_several_workers_with_the_memory_store_are_refused_with_the_reason() -> None:
    (problem,) = problems_of("extproc: {workers: 2}\ncache: {}\n")
    assert problem.startswith("store.backend: 2 ext_proc workers would each keep their own memory store")
    assert "store.backend: redis" in problem
    load("extproc: {workers: 2}\n")  # nothing shared to split: allowed
    load('extproc: {workers: 2}\ncache: {}\nstore: {redis: {url: "redis://127.0.0.1:1/0"}}\n')


def test_a_rule_must_count_something_and_names_are_unique() -> None:
    assert problems_of("limits: {rules: [{name: a, key: [client]}]}")
    problems = problems_of("limits: {rules: [{name: a, key: [client], requests: 1}, {name: a, key: [], tokens: 1}]}")
    assert problems == ["limits.rules[1].name: duplicate rule name 'a'"]
    assert problems_of("limits: {rules: [{name: a, key: [user], requests: 1}]}")


def test_a_redis_password_never_sits_in_the_url_and_an_unset_env_is_named() -> None:
    problems = problems_of('store: {redis: {url: "redis://:pw@127.0.0.1:6379/0", password_env: REDIS_PW}}')
    assert problems == [
        "store.redis.password_env: environment variable REDIS_PW is not set",
        "store.redis.url: put the password in password_env or password_file, not in the URL",
    ]
    assert problems_of("store: {backend: redis}") == ["store.redis: backend redis needs store.redis.url"]


def test_the_store_is_restart_only() -> None:
    running = load("")
    changed = load('store: {redis: {url: "redis://127.0.0.1:6379/0"}}')
    assert restart_required(running, changed) == [
        "store.backend changed: restart the gateway to apply it",
        "store.redis changed: restart the gateway to apply it",
    ]
    assert restart_required(running, load("cache: {}\nlimits: {rules: [{name: a, key: [], requests: 1}]}")) == []


def test_a_listener_local_rate_limit_is_rendered_in_front_of_the_ext_proc() -> None:
    config = load("listeners: [{name: main, port: 10000, local_rate_limit: {requests_per_s: 50, burst: 200}}]\n")
    hcm = render_listeners(config, Path("secrets"))[0]["filter_chains"][0]["filters"][0]["typed_config"]
    names = [item["name"] for item in hcm["http_filters"]]
    assert names[0] == "envoy.filters.http.local_ratelimit" and names[-2:][0] == "envoy.filters.http.ext_proc"
    bucket = hcm["http_filters"][0]["typed_config"]["token_bucket"]
    assert bucket == {"max_tokens": 200, "tokens_per_fill": 50, "fill_interval": "1s"}
    assert "local_rate_limited" in json.dumps(hcm["local_reply_config"])
    plain = load("")
    hcm = render_listeners(plain, Path("secrets"))[0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "envoy.filters.http.local_ratelimit" not in [item["name"] for item in hcm["http_filters"]]


def test_routes_and_providers_carry_their_cache_ttls_and_routes_their_names() -> None:
    config = load_text(
        """
providers:
  - {name: mock, kind: mock, cache_ttl_s: 5}
routes:
  - {model: "a-*", provider: mock, name: alpha, cache_ttl_s: 0}
  - {model: "b-*", provider: mock}
""",
        {},
        Path("."),
    )
    assert config.providers[0].cache_ttl_s == 5
    assert [(r.name, r.cache_ttl_s) for r in config.routes] == [("alpha", 0), ("b-*", None)]
