"""The admin server's state-changing endpoints and /status: loopback, Unix socket or bearer token,
else 403; probes and metrics stay open to anyone."""

from __future__ import annotations

import asyncio
import socket
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from extproc.observe.admin_access import access_guard

TOKEN = "s3cret-admin-token"


def request(method: str, path: str, peer: object, family: int = socket.AF_INET, auth: str | None = None) -> web.Request:
    transport = mock.Mock()
    sock = mock.Mock(family=family)
    transport.get_extra_info.side_effect = lambda name, default=None: {"peername": peer, "socket": sock}.get(
        name, default
    )
    headers = {"Authorization": auth} if auth else {}
    return make_mocked_request(method, path, headers=headers, transport=transport)


def status(req: web.Request, token: str = TOKEN) -> int:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(text="done")

    guard = access_guard(lambda: token)
    return asyncio.run(guard(req, handler)).status  # type: ignore[call-arg]


REMOTE = ("10.1.2.3", 40000)


@pytest.mark.parametrize("peer", [("127.0.0.1", 1), ("::1", 1, 0, 0), ("::ffff:127.0.0.1", 1, 0, 0)])
def test_reload_from_a_loopback_peer_is_served(peer: tuple[object, ...]) -> None:
    assert status(request("POST", "/reload", peer), token="") == 200


def test_reload_over_a_unix_socket_is_served() -> None:
    assert status(request("POST", "/reload", "", family=socket.AF_UNIX), token="") == 200


@pytest.mark.parametrize("peer", [("127.0.0.1", 1), ("::1", 1, 0, 0)])
def test_with_a_token_configured_a_loopback_or_socket_peer_needs_it_too(peer: tuple[object, ...]) -> None:
    # In a pod the app's containers share loopback: the token is what keeps them out.
    assert status(request("POST", "/reload", peer)) == 403
    assert status(request("POST", "/reload", "", family=socket.AF_UNIX)) == 403
    assert status(request("POST", "/reload", peer, auth=f"Bearer {TOKEN}")) == 200


def test_reload_from_a_remote_peer_without_the_token_is_forbidden() -> None:
    assert status(request("POST", "/reload", REMOTE)) == 403
    assert status(request("POST", "/reload", REMOTE, auth="Bearer wrong")) == 403
    assert status(request("POST", "/reload", REMOTE, auth=TOKEN)) == 403  # no scheme


def test_reload_from_a_remote_peer_with_the_bearer_token_is_served() -> None:
    assert status(request("POST", "/reload", REMOTE, auth=f"Bearer {TOKEN}")) == 200


def test_no_configured_token_opens_nothing_to_remote_peers() -> None:
    assert status(request("POST", "/reload", REMOTE, auth="Bearer "), token="") == 403


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_stay_open_to_remote_peers(path: str) -> None:
    assert status(request("GET", path, REMOTE)) == 200


def test_status_with_a_token_configured_needs_it_from_every_peer() -> None:
    # /status carries the last reload's problems and the breakers: read like POST /reload is called.
    for peer in (REMOTE, ("127.0.0.1", 1)):
        assert status(request("GET", "/status", peer)) == 403
        assert status(request("GET", "/status", peer, auth="Bearer wrong")) == 403
        assert status(request("GET", "/status", peer, auth=f"Bearer {TOKEN}")) == 200
    assert status(request("GET", "/status", "", family=socket.AF_UNIX)) == 403


def test_status_without_a_token_is_served_to_local_peers_only() -> None:
    assert status(request("GET", "/status", ("127.0.0.1", 1)), token="") == 200
    assert status(request("GET", "/status", "", family=socket.AF_UNIX), token="") == 200
    assert status(request("GET", "/status", REMOTE), token="") == 403
