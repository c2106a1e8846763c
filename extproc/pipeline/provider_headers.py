"""Stage: header allow-lists, both ways.

To a provider go only the headers its API needs: the body's type and length,
what the client accepts, our request id and the internal `x-gw-*` headers
(the upstream pass removes those), plus a same-API client's own protocol
headers (`anthropic-version`, `anthropic-beta`, `openai-beta`) where its kind
allows them; for a pool, every kind's, which each attempt then narrows to its own
(`server.pool_attempt`: Claude on Bedrock takes the client's betas in the body). Cookies, organisation and project ids, forwarding headers and
SDK telemetry stay behind. Back to the client go only headers that describe
the answer; never cookies, provider organisation ids or quota figures.
"""

from __future__ import annotations

from extproc.contract import INTERNAL_PREFIX
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.provider_kinds import PROTOCOL_HEADERS
from extproc.providers import model_kind, serves

# x-forwarded-proto stays: Envoy's router cannot route without it (measured: a 404 with no route).
TO_PROVIDER = frozenset(
    {"content-type", "content-length", "accept", "x-request-id", "te", "transfer-encoding", "x-forwarded-proto"}
)
TO_CLIENT = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "date",
        "retry-after",
        "retry-after-ms",
        "x-request-id",
        "request-id",
    }
)


def _to_provider(name: str, extra: frozenset[str]) -> bool:
    return name.startswith((":", INTERNAL_PREFIX)) or name in TO_PROVIDER or name in extra


class ProviderHeadersStage(Stage):
    name = "provider_headers"

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        provider, endpoint, target = ex.provider, ex.endpoint, ex.target
        assert provider is not None and endpoint is not None and target is not None
        model = target.upstream_model
        if target.pooled:
            extra = PROTOCOL_HEADERS
        elif serves(provider, endpoint.format, model):
            extra = model_kind(provider, model).passthrough_headers
        else:
            extra = frozenset()
        already = set(reply.remove_headers)
        reply.remove_headers += [name for name in ex.headers if not _to_provider(name, extra) and name not in already]
        return None

    def response_headers(self, ex: Exchange, reply: PhaseReply, headers: dict[str, str]) -> None:
        reply.remove_headers += [name for name in headers if not (name[0] == ":" or name in TO_CLIENT)]
