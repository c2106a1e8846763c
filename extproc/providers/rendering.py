"""A client's request made for one provider: fitted to what the provider can do, in its format,
with its model name; or the client's own bytes when the provider speaks the client's API and
nothing had to change. Used for a single provider (router pass) and per attempt of a pool
(upstream pass); the features a provider lacks are counted here, for both."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.formats import FORMATS, OWN_BODY_ON, OWN_COUNT_ON, PROVIDER_APIS
from extproc.formats.bedrock.invoke import betas_of
from extproc.formats.canonical import ChatRequest, EmbeddingRequest, read_conversation
from extproc.formats.endpoint import Format
from extproc.formats.provider_params import lacking
from extproc.formats.render_options import Lacking, RenderOptions, Unsupported
from extproc.formats.shared_wire import with_fields
from extproc.formats.token_count import COUNT_REQUESTS
from extproc.observe.metrics import FEATURES_DROPPED, feature_label
from extproc.provider_kinds import RECORDS, ProviderKind
from extproc.providers import model_kind, provider_format, serves, wire_format
from extproc.providers.betas import BETA_FEATURE, dropped_name, provider_betas
from extproc.providers.capabilities import api_features_lost, fit_to_provider


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    body: bytes | None  # None: the client's own bytes go on unchanged
    stream: bool  # the provider is asked to stream (False for one that cannot: the client's stream is served whole)
    dropped: list[str] = field(default_factory=list)  # features left out (named to the client)


# Per kind record, what it lacks as the pairs a render checks, made once (keyed by the record's
# own frozenset, whose hash is cached: a request pays one dict lookup)
_LACKS: dict[frozenset[str], Lacking] = {kind.unsupported: lacking(kind.unsupported) for kind in RECORDS}


def lacks_of(kind: ProviderKind) -> Lacking:
    """What a kind's record says it lacks, as the pairs a render checks."""
    return _LACKS[kind.unsupported]


def render_options(provider: Provider, model: str, betas: tuple[str, ...] = ()) -> RenderOptions:
    kind = model_kind(provider, model)
    return RenderOptions(
        model,
        provider.unsupported,
        provider.default_max_tokens,
        lacks=_LACKS[kind.unsupported],
        model_in_body=kind.model_in_body,
        body_fields=kind.body_fields,
        betas=betas,
        betas_listed=provider.anthropic_betas is not None,
    )


def client_betas(client: Format, headers: Mapping[str, str]) -> tuple[str, ...]:
    """An Anthropic client's `anthropic-beta` values (no other client API has them)."""
    return betas_of(headers.get("anthropic-beta")) if client == "anthropic" else ()


def chat_for(
    request: ChatRequest, body: bytes, client: Format, provider: Provider, model: str, betas: tuple[str, ...] = ()
) -> ProviderRequest:
    """`request` (parsed from `body`, `stream` as the client asked) for `provider`; it is changed in
    place. `betas`: an Anthropic client's `anthropic-beta` values, for a provider that takes them in
    the body (Claude on Bedrock); those it is not to get are named as dropped (providers.betas)."""
    betas, left_out = _narrowed(provider, model, betas)
    made = _fit_and_render(request, client, provider, model, betas)
    if made is None:  # the client's own request suits the provider
        wire = wire_format(provider, client, model)
        if wire != client:  # the client's API on another service (Claude on Bedrock): its body edited for it
            return _counted(provider, ProviderRequest(OWN_BODY_ON[wire](body, betas), request.stream, left_out))
        own = _own_body(body, request.model, client, provider, model, parsed=request.source)
        return _counted(provider, ProviderRequest(own, request.stream, left_out))
    return _counted(provider, ProviderRequest(made.body, made.stream, made.dropped + left_out))


def _narrowed(provider: Provider, model: str, asked: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """The betas `provider` gets for `model`, and the client's it does not (dropped and named, or a
    400 under the `reject` policy)."""
    if not asked:
        return (), []
    taken = provider_betas(provider, model, asked)
    unsupported = Unsupported(provider.unsupported, f"provider {provider.name}")
    for beta in taken.left_out:
        unsupported.lacks(dropped_name(beta), BETA_FEATURE)
    return taken.kept, unsupported.dropped


def _own_body(
    body: bytes,
    asked: str,
    client: Format,
    provider: Provider,
    model: str,
    count: bool = False,
    parsed: dict[str, Any] | None = None,
) -> bytes | None:
    """The client's own body for a provider of its API: the model renamed, and a kind's own body
    fields set (Claude on Vertex AI: `anthropic_version`, no `model` except in a count); None: unchanged.
    `parsed`: the body as the client's parser read it (written again without a second read; changed)."""
    kind = model_kind(provider, model)
    if kind.body_fields:
        return with_fields(body, model if kind.model_in_body or count else None, kind.body_fields, parsed)
    return None if asked == model else FORMATS[client].with_model(body, model, parsed)


def suits_unread(request: ChatRequest, client: Format, provider: Provider, model: str) -> bool:
    """Whether `chat_for` sends `provider` the client's own bytes whatever the request's messages
    and tools hold: a provider of the client's API that lacks nothing they could need, and no field
    read with the rest (streaming, max_tokens) to fit. Then they are left unread: that provider
    judges them, and an agent's long conversation costs the gateway no canonical form."""
    caps = provider.capabilities
    return (
        wire_format(provider, client, model) == client
        and not model_kind(provider, model).answers_locally
        and caps.tools
        and caps.images
        and caps.json_schema
        and (caps.streaming or not request.stream)
        and not (caps.max_tokens and request.max_tokens and request.max_tokens > caps.max_tokens)
    )


def dropped_for(request: ChatRequest, client: Format, provider: Provider, model: str) -> list[str]:
    """The features `chat_for` leaves out of `request` for `provider`, `request` untouched: what a
    pool's answer names once Envoy says which provider gave it (each attempt's upstream pass
    rendered, and counted, its own)."""
    # Fitting replaces the request's and its messages' fields, never changes them in place: shallow
    # copies keep `request` as it was (a tenth of a deep copy's cost on a long conversation).
    fitted = copy.copy(request)
    fitted.messages = [copy.copy(message) for message in request.messages]
    try:
        made = _fit_and_render(fitted, client, provider, model)
    except GatewayError:  # refused: that attempt was answered with a 400, nothing was dropped
        return []
    return made.dropped if made is not None else []


def _fit_and_render(
    request: ChatRequest, client: Format, provider: Provider, model: str, betas: tuple[str, ...] = ()
) -> ProviderRequest | None:
    """None: the provider speaks the client's API and nothing had to change."""
    if request.unread is not None and not suits_unread(request, client, provider, model):
        read_conversation(request)  # fitted or rendered: the whole request is needed after all
    native = serves(provider, client, model)
    fitting = fit_to_provider(request, provider, native)
    stream = request.stream and provider.capabilities.streaming
    if native and not fitting.changed and stream == request.stream:
        return None
    if native:  # rendered from the canonical request after all: what only the client's bytes carried is lost
        fitting.dropped += api_features_lost(request, provider)
    request.stream = stream
    rendered = PROVIDER_APIS[wire_format(provider, client, model)].render_request(
        request, render_options(provider, model, betas)
    )
    return ProviderRequest(rendered.body, stream, fitting.dropped + rendered.dropped)


def counts_tokens(provider: Provider, client: Format, model: str) -> bool:
    """Whether the provider counts a prompt's tokens for a client of an API with a count
    (Anthropic's count_tokens, the Responses API's input_tokens): a provider of that API itself, and
    one whose API has a count operation (Gemini's countTokens, Bedrock's CountTokens) for any
    client, for the models its record says it counts."""
    kind = model_kind(provider, model)
    if kind.counts is not None and not kind.counts(model):
        return False
    return provider_format(provider, model) in COUNT_REQUESTS or serves(provider, client, model)


def count_for(
    request: ChatRequest, body: bytes, client: Format, provider: Provider, model: str, betas: tuple[str, ...] = ()
) -> ProviderRequest:
    """A token count's request: the client's own for a provider of its API (made for the other
    service's count where the client's API is spoken on one: Claude on Bedrock), else the provider's
    count operation for the request as a chat request would get it (fitted as one would be: what a
    provider lacks is not counted, and named)."""
    wire = wire_format(provider, client, model)
    betas, left_out = _narrowed(provider, model, betas)
    if wire == client:
        own = _own_body(body, request.model, client, provider, model, count=True)
        return _counted(provider, ProviderRequest(own, False, left_out))
    if wire in OWN_COUNT_ON and serves(provider, client, model):
        return _counted(provider, ProviderRequest(OWN_COUNT_ON[wire](body, betas), False, left_out))
    render = COUNT_REQUESTS.get(wire)
    if render is None:
        raise GatewayError("internal", f"provider {provider.name} cannot count tokens")
    fitting = fit_to_provider(request, provider, native=False)
    rendered = render(request, render_options(provider, model, betas))
    return _counted(provider, ProviderRequest(rendered.body, False, fitting.dropped + rendered.dropped + left_out))


def embeddings_for(request: EmbeddingRequest, provider: Provider, model: str) -> ProviderRequest:
    """Refused with a 400 where the provider's record for the model has no embeddings, or takes
    fewer inputs a request than the client sent (gemini-embedding-001 on Vertex AI: one)."""
    kind = model_kind(provider, model)
    if not provider.capabilities.embeddings or (kind.embeds is not None and not kind.embeds(model)):
        raise GatewayError(
            "invalid_request", f"provider {provider.name} has no embeddings API for model {model}", param="model"
        )
    if kind.embedding_inputs is not None and len(request.inputs) > kind.embedding_inputs:
        raise GatewayError(
            "invalid_request",
            f"model {model} on provider {provider.name} embeds at most {kind.embedding_inputs} input(s) per "
            f"request and this one has {len(request.inputs)}: send them in separate requests",
            param="input",
        )
    rendered = PROVIDER_APIS[provider_format(provider, model)].render_embedding_request(
        request, render_options(provider, model)
    )
    return _counted(provider, ProviderRequest(rendered.body, False, rendered.dropped))


def _counted(provider: Provider, made: ProviderRequest) -> ProviderRequest:
    for feature in made.dropped:
        FEATURES_DROPPED.labels(provider.name, feature_label(feature)).inc()
    return made


def fixed_headers(provider: Provider, client: Format, present: dict[str, str], model: str) -> list[tuple[str, str]]:
    """A kind's fixed headers (anthropic-version), unless a same-API client's own is kept; an
    Anthropic client's betas for a service that takes them in the header (Claude on Vertex AI), as
    that service names them (the client's own header is not forwarded there)."""
    same_api = serves(provider, client, model)
    kind = model_kind(provider, model)
    fixed = [(name, value) for name, value in kind.fixed_headers if not (same_api and name in present)]
    asked = client_betas(client, present) if kind.beta_header else ()
    if asked and (kept := provider_betas(provider, model, asked).kept):
        fixed.append(("anthropic-beta", ",".join(kept)))
    return fixed
