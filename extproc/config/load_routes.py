"""Routes from a schema-valid document: rules, pools and their resilience settings, checked together."""

from __future__ import annotations

import re
from typing import Any

from extproc.config.model import Provider, Route
from extproc.config.route_model import HeaderMatch, PoolMember, Resilience, RouteMatch

_CLUSTER_SAFE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Rendered into a pool's own Envoy cluster and route; a single provider has its provider's settings.
_POOL_ONLY = ("retry", "timeouts", "outlier_detection", "circuit_breakers")


def parse_routes(items: list[dict[str, Any]], providers: tuple[Provider, ...], problems: list[str]) -> list[Route]:
    by_name = {provider.name: provider for provider in providers}
    routes: list[Route] = []
    for i, item in enumerate(items):
        where = f"routes[{i}]"
        name = item.get("name", item["model"])
        if name in [route.name for route in routes]:
            problems.append(f"{where}.name: duplicate route name {name!r}")
        pool = tuple(_member(raw) for raw in item.get("pool", ()))
        for j, member in enumerate(pool):
            provider = by_name.get(member.provider)
            if provider is None:
                problems.append(f"{where}.pool[{j}].provider: no provider named {member.provider!r}")
            elif provider.kind == "mock":
                problems.append(f"{where}.pool[{j}].provider: the mock provider answers locally and cannot be pooled")
        if pool and ("name" not in item or not _CLUSTER_SAFE.match(name)):
            problems.append(f"{where}.name: a route with a pool needs a name (a-z, 0-9, _ and -)")
        if not pool:
            problems += [
                f"{where}.{key}: applies to a pool only; a single provider's timeouts are set on the provider"
                for key in _POOL_ONLY
                if key in item
            ]
        primary = pool[0].provider if pool else item["provider"]
        if not pool and primary not in by_name:
            problems.append(f"{where}.provider: no provider named {primary!r}")
        routes.append(
            Route(
                item["model"],
                primary,
                item.get("upstream_model"),
                item.get("auth"),
                name=name,
                cache_ttl_s=item.get("cache_ttl_s"),
                match=_match(item.get("match") or {}, f"{where}.match", problems),
                pool=pool,
                resilience=_resilience(item),
            )
        )
        if item.get("auth") is not None and routes[-1].match.needs_identity:
            problems.append(f"{where}.auth: a route that matches on clients or tenants cannot choose the client auth")
    return routes


def _member(raw: dict[str, Any]) -> PoolMember:
    return PoolMember(raw["provider"], raw.get("model"), raw.get("weight", 1), raw.get("priority", 0))


def _match(raw: dict[str, Any], where: str, problems: list[str]) -> RouteMatch:
    headers = []
    for i, item in enumerate(raw.get("headers", ())):
        given = [key for key in ("exact", "regex", "present") if key in item]
        if len(given) != 1:
            problems.append(f"{where}.headers[{i}]: give exactly one of exact, regex, present")
            continue
        regex = None
        if "regex" in item:
            try:
                regex = re.compile(item["regex"])
            except re.error as error:
                problems.append(f"{where}.headers[{i}].regex: {error}")
                continue
        headers.append(HeaderMatch(item["name"].lower(), item.get("exact"), regex, item.get("present")))
    return RouteMatch(
        headers=tuple(headers),
        clients=tuple(raw.get("clients", ())),
        tenants=tuple(raw.get("tenants", ())),
        apis=tuple(raw.get("apis", ())),
        path_prefix=raw.get("path_prefix"),
    )


def _resilience(item: dict[str, Any]) -> Resilience:
    retry = item.get("retry") or {}
    timeouts = item.get("timeouts") or {}
    return Resilience(
        retry_attempts=retry.get("attempts", 2),
        retry_on=tuple(retry.get("retry_on", ("5xx", "reset", "connect-failure"))),
        total_ms=timeouts.get("total_ms"),
        first_byte_ms=timeouts.get("first_byte_ms"),
        idle_ms=timeouts.get("idle_ms"),
        outlier_detection=dict(item.get("outlier_detection") or {}),
        circuit_breakers=dict(item.get("circuit_breakers") or {}),
    )
