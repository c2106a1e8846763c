"""The router pass as a pipeline: an ordered list of small stages (see `stage.py`).

Request headers: endpoint -> auth -> local answers. Request body: parse ->
auth -> route -> local answers -> provider headers -> translate. Response: provider
headers -> answer. Then the access log. Each stage acts only in the phases it
overrides; limits and cache arrive as more stages.
"""

from __future__ import annotations

from extproc.pipeline.access_log import AccessLogStage
from extproc.pipeline.answer import AnswerStage
from extproc.pipeline.auth import AuthStage
from extproc.pipeline.endpoint import EndpointStage
from extproc.pipeline.local_answers import LocalAnswersStage
from extproc.pipeline.parse import ParseStage
from extproc.pipeline.provider_headers import ProviderHeadersStage
from extproc.pipeline.route import RouteStage
from extproc.pipeline.stage import Stage
from extproc.pipeline.translate import TranslateStage


def default_stages() -> list[Stage]:
    return [
        EndpointStage(),
        ParseStage(),
        AuthStage(),
        RouteStage(),
        LocalAnswersStage(),
        ProviderHeadersStage(),
        TranslateStage(),
        AnswerStage(),
        AccessLogStage(),
    ]
