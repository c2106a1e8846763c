"""Admin HTTP server: /healthz (alive), /readyz (serving, Envoy included), /metrics (Prometheus),
GET /status, GET /spend and POST /reload (local peers, or the bearer token once one is configured)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from extproc.observe.admin_access import access_guard
from extproc.observe.metrics import BreakerStates


class ReloadOutcome(Protocol):
    """What POST /reload answers with (the app's reload result): whether it applied, and why not."""

    ok: bool
    problems: list[str]


def _exposition(breaker_states: Mapping[str, int]) -> bytes:
    """This process's metrics, or every worker's merged when running several processes, then the
    breakers' states read for this scrape."""
    now = CollectorRegistry()
    now.register(BreakerStates(breaker_states))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + generate_latest(now)
    return generate_latest() + generate_latest(now)


def build_admin_app(
    is_ready: Callable[[], Awaitable[bool]],
    reload: Callable[[], Awaitable[ReloadOutcome]] | None = None,
    admin_token: Callable[[], str] = lambda: "",
    status: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    store_reachable: Callable[[], Awaitable[bool | None]] | None = None,
    spend: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    breaker_states: Callable[[], Awaitable[Mapping[str, int]]] | None = None,
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ready" if await is_ready() else "not ready"}
        # Redis down does not make the gateway unready (the cache is bypassed, limits follow
        # on_store_error): it is reported, for a probe or an operator to see.
        reachable = await store_reachable() if store_reachable else None
        if reachable is not None:
            body["redis"] = "reachable" if reachable else "unreachable"
        return web.json_response(body, status=200 if body["status"] == "ready" else 503)

    async def status_now(_: web.Request) -> web.Response:
        return web.json_response(await status() if status else {})

    async def spend_now(_: web.Request) -> web.Response:
        try:
            return web.json_response(await spend() if spend else {"budgets": [], "spend": {}})
        except Exception as error:  # the store: said plainly, the process keeps serving
            return web.json_response({"error": f"spend cannot be read now: {type(error).__name__}"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        states = await breaker_states() if breaker_states else {}
        return web.Response(body=_exposition(states), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def reload_now(_: web.Request) -> web.Response:
        if reload is None:
            return web.json_response({"ok": False, "problems": ["started without a config file"]}, status=409)
        result = await reload()
        return web.json_response({"ok": result.ok, "problems": result.problems}, status=200 if result.ok else 400)

    app = web.Application(middlewares=[access_guard(admin_token)])
    app.router.add_post("/reload", reload_now)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status_now)
    app.router.add_get("/spend", spend_now)
    return app


async def start_admin(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
