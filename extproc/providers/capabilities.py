"""Fit a request to what its provider declares it can do.

A feature the provider lacks is adapted where a faithful adaptation exists
(a stream is served from a whole answer, `max_tokens` is capped), otherwise
dropped (and named in a response header) or rejected with a 400, per the
provider's `unsupported` policy. What only the client's own API carries (the
request's ApiFeatures) reaches a provider only with the client's own bytes:
a request rendered from the canonical model loses it, named or refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.formats.canonical import ChatRequest, ImagePart, ResponseFormat
from extproc.formats.render_options import Unsupported


@dataclass(slots=True)
class Fitting:
    dropped: list[str] = field(default_factory=list)  # features removed (named to the client)
    changed: bool = False  # the request was adapted or cut down in any way


def fit_to_provider(request: ChatRequest, provider: Provider, native: bool = True) -> Fitting:
    """Change `request` in place to what the provider can do; say what changed. `native`: the
    provider speaks the client's API, so what only that API carries (ApiFeature) goes with it."""
    caps = provider.capabilities
    unsupported = Unsupported(provider.unsupported, f"provider {provider.name}")
    fitting = Fitting(unsupported.dropped)
    if not native:
        _lose_api_features(request, provider, unsupported)

    if request.tools and not caps.tools:
        unsupported.lacks("tools")
        request.tools, request.tool_choice, request.parallel_tool_calls = [], None, None
    if not caps.images and any(isinstance(p, ImagePart) for m in request.messages for p in m.content):
        unsupported.lacks("images")
        for message in request.messages:
            message.content = [p for p in message.content if not isinstance(p, ImagePart)]
    if request.response_format and request.response_format.type == "json_schema" and not caps.json_schema:
        unsupported.lacks("json_schema")
        request.response_format = ResponseFormat("json_object")  # still JSON, without the schema
    if caps.max_tokens and request.max_tokens and request.max_tokens > caps.max_tokens:
        request.max_tokens = caps.max_tokens
        fitting.changed = True
    fitting.changed = fitting.changed or bool(fitting.dropped)
    return fitting


def api_features_lost(request: ChatRequest, provider: Provider) -> list[str]:
    """The names of the request's ApiFeatures, each once, for a provider that gets the request
    rendered from the canonical model; a 400 naming the client's field where one must be refused."""
    unsupported = Unsupported(provider.unsupported, f"provider {provider.name}")
    _lose_api_features(request, provider, unsupported)
    return unsupported.dropped


def _lose_api_features(request: ChatRequest, provider: Provider, unsupported: Unsupported) -> None:
    for feature in request.api_features:
        if feature.when_foreign == "refuse":
            raise GatewayError(
                "invalid_request",
                f"{feature.name} is not supported by provider {provider.name}: it needs state the provider "
                "keeps (send the whole conversation with each request, with store: false)",
                param=feature.param,
            )
        if feature.when_foreign == "policy":
            unsupported.lacks(feature.name, feature.param)
        else:
            unsupported.drop(feature.name)
