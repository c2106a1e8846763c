"""Typed settings of the `store`, `limits` and `cache` sections, each field the declaration of its
option (extproc.declare), and their checks on a schema-valid document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from extproc.declare import NonEmpty, Positive, Schema, Seconds, build, derived, option, section
from extproc.redact import env_var_unset

MIB = 1024 * 1024
LimitKey = Literal["client", "tenant", "provider", "model", "route"]
CalendarWindow = Literal["day", "month"]
# Kept in the store as whole micro-dollars: a billion USD stays exact in a double (Redis' Lua numbers).
USD = Annotated[float, Schema(exclusiveMinimum=0, maximum=1e9)]
_Names = Annotated[tuple[NonEmpty, ...], Schema(minItems=1)]


@section("the Redis server (restart to change)")
@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = option(
        pattern="^rediss?://[^\\s]+$",
        description="redis://host:port/db, or rediss:// for TLS; no password in it",
        examples=["redis://redis:6379/0"],
    )
    password_env: str | None = option(
        None, description="environment variable holding the password", examples=["REDIS_PASSWORD"]
    )
    password_file: str | None = option(
        None, description="file holding the password (k8s secret mount)", examples=["/run/secrets/redis/password"]
    )
    ca_file: str | None = option(
        None, description="PEM CAs to verify a rediss:// server with", examples=["redis-ca.pem"]
    )  # absolute once loaded
    key_prefix: str = option(
        "gw:",
        maxLength=64,
        description="prefix of every key the gateway writes (several gateways can share one Redis)",
    )
    timeout_ms: Positive = option(
        250, description="per command and connect: a Redis outage costs a request at most this"
    )
    password: str | None = derived(None, repr=False)  # resolved secret: never logged


@section("where limits and the cache live: memory (one process) or redis (shared by workers and replicas)")
@dataclass(frozen=True, slots=True)
class StoreSettings:
    backend: Literal["memory", "redis"] = option(
        "memory",
        unset=True,
        description="memory (this process only) or redis (not set: redis when store.redis is given, "
        "else memory); restart to change",
    )
    redis: RedisSettings | None = option(None)


@section("the rule applies only to requests matching all of these (globs for models)")
@dataclass(frozen=True, slots=True)
class LimitMatch:
    clients: _Names = option((), unset=True, description="client ids (exact)", examples=[["search-team"]])
    tenants: _Names = option((), unset=True, description="tenants (exact)", examples=[["acme"]])
    providers: _Names = option((), unset=True, description="provider names (exact)", examples=[["openai"]])
    models: _Names = option(
        (), unset=True, description="model globs (the client's model)", examples=[["gpt-4o*"]]
    )  # globs
    routes: _Names = option((), unset=True, description="route names (exact)", examples=[["chat"]])


@section(
    anyOf=[
        {"required": ["requests"]},
        {"required": ["tokens"]},
        {"required": ["usd"]},
        {"required": ["concurrent_streams"]},
    ]
)
@dataclass(frozen=True, slots=True)
class LimitRule:
    name: str = option(
        pattern="^[a-z0-9][a-z0-9_.-]*$",
        maxLength=60,
        description="names the rule in metrics and in the 429's message",
        examples=["per-client"],
    )
    key: tuple[LimitKey, ...] = option(
        uniqueItems=True,
        description="what is counted separately: [client] is per client, [tenant, model] per tenant and "
        "model, [] one budget for everything the rule matches",
        examples=[["client"]],
    )
    match: LimitMatch = option(LimitMatch())
    window_s: Seconds = option(
        60.0, description="the rolling window requests, tokens and USD are counted over (unless `window` is set)"
    )
    window: CalendarWindow | None = option(
        None,
        description="count over the calendar day or month (UTC) instead: nothing comes back before it ends, "
        "and everything does then",
        examples=["month"],
    )
    requests: Positive | None = option(None, description="requests per window", examples=[60])
    tokens: Positive | None = option(None, description="input + output tokens per window", examples=[100000])
    usd: USD | None = option(
        None,
        description="a budget: USD per window, at the prices in force (a request reserves its worst case and "
        "settles at its real cost; a model with no price is refused under it, docs/spend.md)",
        examples=[50],
    )
    concurrent_streams: Positive | None = option(None, description="streaming requests in flight at once", examples=[4])


@section("rate limits in requests, tokens and concurrent streams, kept in the store")
@dataclass(frozen=True, slots=True)
class LimitSettings:
    on_store_error: Literal["allow", "deny"] = option(
        "allow",
        description="when the store cannot be reached: let requests through (allow) or refuse them with a 503 (deny)",
    )
    rules: tuple[LimitRule, ...] = option(
        (), unset=True, description="a request is charged in every rule that matches it (all at once, or none)"
    )


@section("exact-match response cache, per tenant; on when this section is present")
@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = option(
        False, documented=True, description="false turns the cache off and keeps the section"
    )  # off without the section; a section given is on unless it says otherwise
    scope: Literal["tenant", "client"] = option("tenant", description="who shares entries")
    chat_ttl_s: Seconds = option(300.0, description="how long a chat answer is kept")
    embeddings_ttl_s: Seconds = option(86400.0, description="how long embeddings are kept")
    max_entries: Positive = option(10_000, description="entries kept; the least recently used go")
    max_bytes: Positive = option(64 * MIB, description="bytes kept (64 MiB); the least recently used entries go")
    max_entry_bytes: Positive = option(MIB, description="answers larger than this are not cached")


def parse_store(raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, problems: list[str]) -> StoreSettings:
    section = raw.get("store") or {}
    backend = section.get("backend", "redis" if "redis" in section else "memory")
    redis_raw = section.get("redis")
    if backend == "redis" and redis_raw is None:
        problems.append("store.redis: backend redis needs store.redis.url")
        return StoreSettings()
    if redis_raw is None:
        return StoreSettings(backend)
    password = _password(redis_raw, env, base_dir, problems)
    ca_file = redis_raw.get("ca_file")
    if ca_file is not None:
        resolved = ca_file if Path(ca_file).is_absolute() else str(base_dir / ca_file)
        if not Path(resolved).is_file():
            problems.append(f"store.redis.ca_file: file not found: {ca_file}")
        ca_file = resolved
    if "@" in redis_raw["url"].split("//", 1)[1].split("/", 1)[0]:
        problems.append("store.redis.url: put the password in password_env or password_file, not in the URL")
    return StoreSettings(backend, build(RedisSettings, redis_raw, password=password, ca_file=ca_file))


def _password(section: dict[str, Any], env: Mapping[str, str], base_dir: Path, problems: list[str]) -> str | None:
    env_name, file_name = section.get("password_env"), section.get("password_file")
    if env_name and file_name:
        problems.append("store.redis: give password_env or password_file, not both")
        return None
    if env_name:
        if not env.get(env_name):
            problems.append(env_var_unset("store.redis.password_env", env_name))
        return env.get(env_name) or None
    if file_name:
        path = Path(file_name) if Path(file_name).is_absolute() else base_dir / file_name
        try:
            return path.read_text().strip() or None
        except OSError:
            problems.append(f"store.redis.password_file: cannot read {file_name}")
    return None


def parse_limits(raw: dict[str, Any], problems: list[str]) -> LimitSettings:
    section = raw.get("limits") or {}
    rules: list[LimitRule] = []
    for i, item in enumerate(section.get("rules") or []):
        if item["name"] in [rule.name for rule in rules]:
            problems.append(f"limits.rules[{i}].name: duplicate rule name {item['name']!r}")
        if "window" in item and "window_s" in item:
            problems.append(f"limits.rules[{i}]: give window_s (rolling) or window (calendar), not both")
        rules.append(build(LimitRule, item))
    return build(LimitSettings, section, rules=tuple(rules))


def parse_cache(raw: dict[str, Any]) -> CacheSettings:
    if "cache" not in raw:
        return CacheSettings()
    section = raw["cache"] or {}
    return build(CacheSettings, section, enabled=section.get("enabled", True))  # a section given is on
