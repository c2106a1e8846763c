"""Stage: read the client's body into the canonical request and look up the route for its model.

A request whose own bytes go on to a provider of its API leaves its conversation unread (the
OpenAI chat and Anthropic Messages formats; the others read it whole):
the fields the gateway decides on (model, streaming, token bounds, sampling) are read and
checked, the conversation is that provider's to judge (DESIGN.md)."""

from __future__ import annotations

import re

from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest, read_conversation
from extproc.formats.repeated_keys import first_position
from extproc.pipeline.cache import may_cache
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.providers import wire_format
from extproc.providers.rendering import suits_unread
from extproc.routing import Facts, Target

_MODEL_VALUE = re.compile(rb'"model"[ \t\r\n]*:[ \t\r\n]*"([^"\\]{1,256})"')  # a name with no escape in it


class ParseStage(Stage):
    name = "parse"

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        endpoint = ex.endpoint
        assert endpoint is not None  # set by the endpoint stage
        client = FORMATS[endpoint.format]
        guessed = None
        if endpoint.operation == "embeddings":
            ex.request = client.parse_embedding_request(body, endpoint)
        else:
            guessed, ex.target = _guess_route(ex, body)
            try:
                chat = client.parse_request(body, endpoint, whole=_read_whole(ex))
            except Exception:
                ex.target = None  # a refused body has no route: the guess was only for reading it
                raise
            if endpoint.stream:
                chat.stream = True
            ex.stream = chat.stream
            ex.request = chat
        ex.model = ex.request.model
        ex.request_bytes = len(body)
        if ex.target is None or guessed != ex.model:
            ex.target = resolve(ex)  # None is answered by the route stage, after auth
        if isinstance(ex.request, ChatRequest) and not _bytes_go_on(ex, ex.request):
            read_conversation(ex.request)  # here, so a bad message is refused before anything is counted
        return None


def _guess_route(ex: Exchange, body: bytes) -> tuple[str | None, Target | None]:
    """The model named first (`"model": "name"`, written plainly) in the body and its route, before
    the body is read: only how the body is read follows from them (`_read_whole`), never what is
    read, and the route found is kept only when the model read is that one."""
    at = first_position(body, b'"model"')
    named = _MODEL_VALUE.match(body, at) if at >= 0 else None
    if named is None:
        return None, None
    try:
        model = named.group(1).decode()
    except UnicodeDecodeError:
        return None, None
    assert ex.endpoint is not None
    facts = Facts(ex.headers, ex.endpoint.format, ex.path, ex.identity.client_id, ex.identity.tenant)
    return model, ex.snapshot.router.resolve(model, facts)


def _read_whole(ex: Exchange) -> bool:
    """Whether the conversation will be read anyway (`_bytes_go_on` false whatever the request's
    fields say), so the body is read whole at once rather than its top level first and the
    conversation after (a second pass over an agent's 80 KB). A wrong guess costs that pass."""
    endpoint, target = ex.endpoint, ex.target
    if endpoint is None or target is None:
        return False
    if _read_by_a_stage(ex, target):
        return True
    return wire_format(target.provider, endpoint.format, target.upstream_model) != endpoint.format


def _read_by_a_stage(ex: Exchange, target: Target) -> bool:
    """Whether a later stage reads the conversation whatever the provider: a pool's attempts, rules
    on who calls (the route may change once auth knows), the cache key."""
    return target.pooled or ex.snapshot.router.needs_identity or may_cache(ex)


def _bytes_go_on(ex: Exchange, request: ChatRequest) -> bool:
    """Whether the client's own bytes go to the one provider this request can reach, and nothing
    reads its conversation: no cache key, no local answer, no other API to render. The route is
    final here unless rules match on who calls (the auth stage resolves again)."""
    endpoint, target = ex.endpoint, ex.target
    if endpoint is None or endpoint.operation != "chat" or target is None or _read_by_a_stage(ex, target):
        return False
    return suits_unread(request, endpoint.format, target.provider, target.upstream_model)


def resolve(ex: Exchange) -> Target | None:
    """The route for this request, as far as its identity is known (the auth stage resolves again
    once it knows who calls, when rules match on clients or tenants)."""
    assert ex.endpoint is not None
    facts = Facts(ex.headers, ex.endpoint.format, ex.path, ex.identity.client_id, ex.identity.tenant)
    return ex.snapshot.router.resolve(ex.model, facts)
