"""Typed settings of the `store`, `limits` and `cache` sections, parsed from a schema-valid document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from extproc.redact import env_var_unset

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    password: str | None = field(default=None, repr=False)  # resolved secret: never logged
    ca_file: str | None = None
    key_prefix: str = "gw:"
    timeout_ms: int = 250


@dataclass(frozen=True, slots=True)
class StoreSettings:
    backend: Literal["memory", "redis"] = "memory"
    redis: RedisSettings | None = None


@dataclass(frozen=True, slots=True)
class LimitMatch:
    clients: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # globs
    routes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LimitRule:
    name: str
    key: tuple[str, ...]
    match: LimitMatch = LimitMatch()
    window_s: float = 60.0
    requests: int | None = None
    tokens: int | None = None
    concurrent_streams: int | None = None


@dataclass(frozen=True, slots=True)
class LimitSettings:
    rules: tuple[LimitRule, ...] = ()
    on_store_error: Literal["allow", "deny"] = "allow"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = False
    scope: Literal["tenant", "client"] = "tenant"
    chat_ttl_s: float = 300.0
    embeddings_ttl_s: float = 86400.0
    max_entries: int = 10_000
    max_bytes: int = 64 * MIB
    max_entry_bytes: int = MIB


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
    redis = RedisSettings(
        url=redis_raw["url"],
        password=password,
        ca_file=ca_file,
        key_prefix=redis_raw.get("key_prefix", "gw:"),
        timeout_ms=redis_raw.get("timeout_ms", 250),
    )
    return StoreSettings(backend, redis)


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
        match = item.get("match") or {}
        rules.append(
            LimitRule(
                name=item["name"],
                key=tuple(item["key"]),
                match=LimitMatch(**{name: tuple(values) for name, values in match.items()}),
                window_s=float(item.get("window_s", 60.0)),
                requests=item.get("requests"),
                tokens=item.get("tokens"),
                concurrent_streams=item.get("concurrent_streams"),
            )
        )
    return LimitSettings(tuple(rules), section.get("on_store_error", "allow"))


def parse_cache(raw: dict[str, Any]) -> CacheSettings:
    if "cache" not in raw:
        return CacheSettings()
    section = dict(raw["cache"] or {})
    section.setdefault("enabled", True)
    return CacheSettings(**section)
