"""Who may change the gateway's state, or read its private side, through the admin server.

Probes and scrapers' reads (/healthz, /readyz, /metrics) stay open. Anything else (POST /reload,
GET /status: the running config's reload errors and the providers' breakers, and GET /spend: what
each client and tenant spent) needs the
configured bearer token from every peer, loopback included: in a pod, the app's containers share
loopback. With no token configured, a loopback peer or a peer over a Unix socket is served (a
developer's machine); everyone else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
GUARDED_READS = frozenset({"/status", "/spend"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_local_peer(request: web.Request) -> bool:
    transport = request.transport
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None and getattr(sock, "family", None) == socket.AF_UNIX:
        return True
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def has_token(request: web.Request, token: str) -> bool:
    """Compared in constant time; an empty configured token opens nothing."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def access_guard(token: Callable[[], str]) -> Middleware:
    """Middleware; `token` is read per request, so a reload can rotate it."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        configured = token()
        if (request.method in OPEN_METHODS and request.path not in GUARDED_READS) or has_token(request, configured):
            return await handler(request)
        if not configured and is_local_peer(request):
            return await handler(request)
        needs = "the admin bearer token" if configured else "loopback, Unix socket or the admin bearer token only"
        return web.json_response({"ok": False, "problems": [f"forbidden: {needs}"]}, status=403)

    return guard
