"""RouteStage driven alone with an Exchange: a model no route serves ends the request with a 404
in the client's format; a routed one goes on untouched."""

from __future__ import annotations

import asyncio

import pytest

from extproc.errors import GatewayError
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.route import RouteStage
from tests.support.exchanges import at_body, chat, snapshot

SNAPSHOT = snapshot()


def run(ex: Exchange, raw: bytes) -> PhaseReply:
    reply = PhaseReply()
    assert asyncio.run(RouteStage().request_body(ex, reply, raw)) is None
    return reply


def test_a_routed_model_goes_on_untouched() -> None:
    ex, raw = at_body(SNAPSHOT, chat("gpt-4o"))
    target = ex.target
    assert run(ex, raw) == PhaseReply() and ex.target is target


def test_a_model_no_route_serves_is_a_404_naming_it() -> None:
    ex, raw = at_body(SNAPSHOT, chat("llama-3"))
    assert ex.target is None
    with pytest.raises(GatewayError) as refused:
        run(ex, raw)
    assert (refused.value.kind, refused.value.status, refused.value.code) == ("not_found", 404, "model_not_found")
    assert "`llama-3`" in refused.value.message
