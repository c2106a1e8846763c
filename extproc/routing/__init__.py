"""Pick the provider for a model: route rules first (exact or glob), then a provider listing the model."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from extproc.config.model import GatewayConfig, Provider, Route


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    upstream_model: str
    auth: str | None = None  # the route's own client auth method, overriding the listener's
    route: str = ""  # the route's name (limits and the cache key on it)
    cache_ttl_s: float | None = None  # the route's own cache TTL


class Router:
    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._exact: dict[str, Target] = {}
        self._globs: list[tuple[str, Route, Provider]] = []
        for route in config.routes:
            provider = config.provider(route.provider)
            assert provider is not None  # checked by config validation
            if any(ch in route.model for ch in "*?["):
                self._globs.append((route.model, route, provider))
            else:
                self._exact.setdefault(route.model, _target(route, provider, route.model))
        for provider in config.providers:
            for model in provider.models:
                self._exact.setdefault(model, Target(provider, model, route=model))
        self._cache: dict[str, Target | None] = {}
        self.routes_choose_auth = any(route.auth is not None for route in config.routes)

    def resolve(self, model: str) -> Target | None:
        if (target := self._exact.get(model)) is not None:
            return target
        if model in self._cache:
            return self._cache[model]
        target = None
        for pattern, route, provider in self._globs:
            if fnmatchcase(model, pattern):
                target = _target(route, provider, model)
                break
        if len(self._cache) < 10_000:  # bounded: model names come from clients
            self._cache[model] = target
        return target

    def models(self) -> list[str]:
        """Every concrete model name the gateway serves (globs are not listable)."""
        return sorted(self._exact)


def _target(route: Route, provider: Provider, model: str) -> Target:
    return Target(provider, route.upstream_model or model, route.auth, route.name or route.model, route.cache_ttl_s)
