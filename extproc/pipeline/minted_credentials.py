"""Stage: providers without a live access token are not asked.

A provider whose token the gateway mints (Vertex AI) holds one only while the last refresh's token
lasts: Envoy would keep sending an expired one. A single such provider is a 503 in the client's
format with retry-after; a pool skips it and sends the request straight to one of its other members
(the lowest priority left, by weight), as it skips one whose breaker is open. Runs after the cache:
a cached answer is still served.
"""

from __future__ import annotations

from extproc.errors import GatewayError
from extproc.pipeline.breaker import direct, pick
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.providers import kind_of
from extproc.xds.minted_tokens import require_live_token


class MintedCredentialsStage(Stage):
    name = "minted_credentials"

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        target = ex.target
        if target is None:
            return None
        config = ex.snapshot.config
        if not target.pooled:
            require_live_token(target.provider, config.envoy.xds_dir)
            return None
        live, refused = [], None
        for member in target.pool:
            provider = config.provider(member.provider)
            credential = kind_of(provider).credential if provider is not None else None
            if provider is None or credential is None or not credential.minted:
                live.append(member)
                continue
            try:
                require_live_token(provider, config.envoy.xds_dir)
                live.append(member)
            except GatewayError as error:
                refused = error
        if refused is None:
            return None
        if not live:
            raise refused
        ex.target = direct(ex, target, pick(live))
        return None
