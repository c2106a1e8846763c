"""Stage: a request whose model no route serves ends here, with a 404 in the client's format.
Placed after auth, so an unknown client learns nothing about which models exist."""

from __future__ import annotations

from extproc.errors import GatewayError
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage


class RouteStage(Stage):
    name = "route"

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        if ex.target is None:
            raise GatewayError("not_found", f"The model `{ex.model}` does not exist", code="model_not_found")
        return None
