"""Routes from a schema-valid document: rules, pools and their resilience settings, checked together."""

from __future__ import annotations

import re
from typing import Any

from extproc.config.model import Provider, Route
from extproc.config.route_model import HeaderMatch, PoolMember, RouteMatch
from extproc.declare import build
from extproc.provider_kinds import KINDS

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
        pool = tuple(build(PoolMember, raw) for raw in item.get("pool", ()))
        for j, member in enumerate(pool):
            provider = by_name.get(member.provider)
            if provider is None:
                problems.append(f"{where}.pool[{j}].provider: no provider named {member.provider!r}")
            elif KINDS[provider.kind].answers_locally:
                problems.append(
                    f"{where}.pool[{j}].provider: the {provider.kind} provider answers locally and cannot be pooled"
                )
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
        match = _match(item.get("match") or {}, f"{where}.match", problems)
        routes.append(build(Route, item, name=name, provider=primary, pool=pool, match=match))
        if item.get("auth") is not None and routes[-1].match.needs_identity:
            problems.append(f"{where}.auth: a route that matches on clients or tenants cannot choose the client auth")
    return routes


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
        headers.append(build(HeaderMatch, item, name=item["name"].lower(), regex=regex))
    return build(RouteMatch, raw, headers=tuple(headers))
