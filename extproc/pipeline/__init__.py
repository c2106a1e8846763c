"""The router pass as a pipeline: an ordered list of small stages (see `stage.py`).

Request headers: endpoint -> auth -> local answers. Request body: parse ->
auth -> route -> limits -> local answers -> cache -> minted credentials -> breaker -> provider headers ->
translate. Response: limits (headers) -> cache (header) -> provider headers ->
answer. At the end: limits settle, the cache stores, the access log. Each
stage acts only in the phases it overrides.
"""

from __future__ import annotations

from extproc.breakers.manager import Breakers
from extproc.pipeline.access_log import AccessLogStage
from extproc.pipeline.answer import AnswerStage
from extproc.pipeline.auth import AuthStage
from extproc.pipeline.breaker import BreakerStage
from extproc.pipeline.cache import CacheStage
from extproc.pipeline.endpoint import EndpointStage
from extproc.pipeline.limits import LimitsStage
from extproc.pipeline.local_answers import LocalAnswersStage
from extproc.pipeline.minted_credentials import MintedCredentialsStage
from extproc.pipeline.parse import ParseStage
from extproc.pipeline.provider_headers import ProviderHeadersStage
from extproc.pipeline.route import RouteStage
from extproc.pipeline.stage import Stage
from extproc.pipeline.translate import TranslateStage
from extproc.store.base import Store


def default_stages(store: Store, breakers: Breakers) -> list[Stage]:
    return [
        EndpointStage(),
        ParseStage(),
        AuthStage(),
        RouteStage(),
        LimitsStage(store),
        LocalAnswersStage(),
        CacheStage(store),
        MintedCredentialsStage(),
        BreakerStage(breakers),
        ProviderHeadersStage(),
        TranslateStage(),
        AnswerStage(),
        AccessLogStage(),
    ]
