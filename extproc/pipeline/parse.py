"""Stage: read the client's body into the canonical request and look up the route for its model."""

from __future__ import annotations

from extproc.formats import FORMATS
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.routing import Facts, Target


class ParseStage(Stage):
    name = "parse"

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        endpoint = ex.endpoint
        assert endpoint is not None  # set by the endpoint stage
        client = FORMATS[endpoint.format]
        if endpoint.operation == "embeddings":
            ex.request = client.parse_embedding_request(body, endpoint)
        else:
            chat = client.parse_request(body, endpoint)
            if endpoint.stream:
                chat.stream = True
            ex.stream = chat.stream
            ex.request = chat
        ex.model = ex.request.model
        ex.request_bytes = len(body)
        ex.target = resolve(ex)  # None is answered by the route stage, after auth
        return None


def resolve(ex: Exchange) -> Target | None:
    """The route for this request, as far as its identity is known (the auth stage resolves again
    once it knows who calls, when rules match on clients or tenants)."""
    assert ex.endpoint is not None
    facts = Facts(ex.headers, ex.endpoint.format, ex.path, ex.identity.client_id, ex.identity.tenant)
    return ex.snapshot.router.resolve(ex.model, facts)
