"""The interface of one stage of the router pass.

A stage overrides only the phases it cares about. In a request phase it
either adds to the phase's reply and returns None (go on), or returns a
LocalAnswer (answer now: later stages and the provider are skipped); a
GatewayError it raises becomes an error in the client's own format. Response
phases only add to the reply. `finish` runs once per request, whatever
happened.
"""

from __future__ import annotations

from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply


class Stage:
    name = "stage"

    async def request_headers(self, ex: Exchange, reply: PhaseReply, end_of_stream: bool) -> LocalAnswer | None:
        return None

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        return None

    def response_headers(self, ex: Exchange, reply: PhaseReply, headers: dict[str, str]) -> None:
        return None

    def response_body(self, ex: Exchange, reply: PhaseReply, chunk: bytes, end_of_stream: bool) -> None:
        return None

    def finish(self, ex: Exchange) -> None:
        return None


def overrides(stage: Stage, phase: str) -> bool:
    """Whether a stage does anything in a phase: the pass calls only those (no no-op awaits)."""
    return getattr(type(stage), phase) is not getattr(Stage, phase)
