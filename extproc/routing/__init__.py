"""Pick the route for a request: rules in order, first match wins (the model, exact or glob, and
the rule's `match` conditions), then a provider listing the model."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from extproc.config.model import GatewayConfig, Provider, Route
from extproc.config.route_model import PoolMember, RouteMatch, member_model


@dataclass(frozen=True, slots=True)
class Facts:
    """What rules may match on besides the model."""

    headers: dict[str, str]
    api: str  # the client's format: openai, anthropic, gemini
    path: str
    client: str
    tenant: str


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider  # a pool's first member
    upstream_model: str
    auth: str | None = None  # the route's own client auth method, overriding the listener's
    route: str = ""  # the route's name (limits and the cache key on it)
    cache_ttl_s: float | None = None  # the route's own cache TTL
    pool: tuple[PoolMember, ...] = ()  # set: Envoy picks among these, per attempt
    cluster: str = ""  # the Envoy cluster the request goes to
    pool_model: str | None = None  # the route's upstream_model: what a member naming none is asked for

    @property
    def pooled(self) -> bool:
        return bool(self.pool)

    def model_for(self, provider: str, client_model: str) -> str:
        """The model a pool's member `provider` is asked for: its own, else the route's, else the client's."""
        return member_model(self.pool, provider, self.pool_model) or client_model


class Router:
    def __init__(self, config: GatewayConfig) -> None:
        self._rules: list[tuple[Route, Provider]] = []
        for route in config.routes:
            provider = config.provider(route.provider)
            assert provider is not None  # checked by config validation
            self._rules.append((route, provider))
        self._listed: dict[str, Provider] = {}
        for provider in config.providers:
            for model in provider.models:
                self._listed.setdefault(model, provider)
        self._candidates: dict[str, list[tuple[Route, Provider]]] = {}
        self._named = frozenset(self.models()) | {name for route in config.routes for name in _upstream_models(route)}
        # Tenants the configuration names (API-key clients, routes' and limits' matches): metric labels
        self._tenants = frozenset(
            {client.tenant for client in config.auth.clients}
            | {name for route in config.routes for name in route.match.tenants}
            | {name for rule in config.limits.rules for name in rule.match.tenants}
        )
        self.routes_choose_auth = any(route.auth is not None for route in config.routes)
        self.needs_identity = any(route.match.needs_identity for route in config.routes)
        # Each rule's own method (None: its listener's); those a request's headers can rule out kept apart.
        self._methods_always = {route.auth for route in config.routes if not _borne_by_headers(route.match)}
        if self._listed:
            self._methods_always.add(None)  # a provider's listed model is served under the listener's method
        self._methods_if = [(route, route.auth) for route in config.routes if _borne_by_headers(route.match)]

    def resolve(self, model: str, facts: Facts) -> Target | None:
        for route, provider in self._candidates_for(model):
            if _holds(route, facts):
                return _target(route, provider, model)
        listed = self._listed.get(model)
        return Target(listed, model, route=model, cluster=listed.cluster) if listed else None

    def methods_before_body(self, listener: str, facts: Facts) -> set[str]:
        """The client auth methods a request may be checked under once its body names the model:
        the own method (else the listener's) of every rule the headers do not rule out. The model
        and the caller are not known yet, so every rule counts that could still match."""
        methods = {listener if method is None else method for method in self._methods_always}
        for route, method in self._methods_if:
            if _holds_before_body(route, facts):
                methods.add(listener if method is None else method)
        return methods or {listener}  # no route at all: a 404, after the listener's check

    def _candidates_for(self, model: str) -> list[tuple[Route, Provider]]:
        """The rules whose model pattern takes this model, in order; remembered per model (bounded)."""
        found = self._candidates.get(model)
        if found is None:
            found = [(r, p) for r, p in self._rules if r.model == model or fnmatchcase(model, r.model)]
            if len(self._candidates) < 10_000:  # model names come from clients
                self._candidates[model] = found
        return found

    def models(self) -> list[str]:
        """Every concrete model name the gateway serves (globs are not listable)."""
        exact = {route.model for route, _ in self._rules if not any(ch in route.model for ch in "*?[")}
        return sorted(exact | self._listed.keys())

    def model_label(self, model: str) -> str:
        """A model as a metric label: a name the configuration spells out (a provider's `models`, a
        route's exact model, an upstream name), else `other`: clients never choose label values."""
        if model in self._named:
            return model
        return "other" if model else ""

    def tenant_label(self, tenant: str, method: str) -> str:
        """A tenant as a metric label: an API-key client's (from the configuration or the keys file the
        operator writes), `anonymous`, or a token's tenant the configuration names; any other token's
        tenant is `other`, so a token issuer cannot grow the metrics without bound."""
        if method != "jwt" or tenant in self._tenants:
            return tenant
        return "other"


def _upstream_models(route: Route) -> set[str]:
    """The names a route asks its providers for (aliases)."""
    names = {member.model for member in route.pool if member.model}
    if route.upstream_model:
        names.add(route.upstream_model)
    return names


def _holds(route: Route, facts: Facts) -> bool:
    match = route.match
    return (
        (not match.apis or facts.api in match.apis)
        and (match.path_prefix is None or facts.path.startswith(match.path_prefix))
        and (not match.clients or facts.client in match.clients)
        and (not match.tenants or facts.tenant in match.tenants)
        and all(header.holds(facts.headers) for header in match.headers)
    )


def _holds_before_body(route: Route, facts: Facts) -> bool:
    """`_holds` less the caller: what a request's headers decide (the API, the path, headers)."""
    match = route.match
    return (
        (not match.apis or facts.api in match.apis)
        and (match.path_prefix is None or facts.path.startswith(match.path_prefix))
        and all(header.holds(facts.headers) for header in match.headers)
    )


def _borne_by_headers(match: RouteMatch) -> bool:
    return bool(match.apis or match.path_prefix is not None or match.headers)


def _target(route: Route, provider: Provider, model: str) -> Target:
    pooled = len(route.pool) > 1
    return Target(
        provider,
        route.upstream_model_for(provider.name) or model,
        route.auth,
        route.name or route.model,
        route.cache_ttl_s,
        route.pool if pooled else (),
        route.cluster if pooled else provider.cluster,
        route.upstream_model if pooled else None,
    )
