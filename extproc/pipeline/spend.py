"""What a request cost in USD: computed once, when its answer is known, from the provider's own
usage at the price table in force (`Snapshot.prices`); an estimate only when the provider gave no
count (a stream cut short, a client that hung up).

The price is looked up by the provider's `priced_as`, else its kind (an Azure OpenAI provider is
`azure`, priced as `openai` unless the table prices it apart), and the model the provider was asked for, then the one
it answered with (an Azure deployment's name is no model name). A model with no price costs 0: a
metric counts it and one log line per model says so. A kind that answers locally (mock) is free
unless the table prices it. A cache hit costs nothing; what the answer cost when it was stored is
counted as saved.
"""

from __future__ import annotations

import logging

from extproc.config.model import Provider
from extproc.formats.canonical import Usage
from extproc.observe.metrics import COST_SAVED_USD, COST_USD, UNPRICED_REQUESTS, labelled
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.usage import NOTHING, usage_seen
from extproc.providers import kind_of
from extproc.spend.prices import Cost

COST_HEADER = "x-gateway-cost-usd"
FREE = Cost(0.0, True)
log = logging.getLogger(__name__)

_BILLED = frozenset({"chat", "embeddings"})
_MAX_LOGGED = 1024  # model names may come from clients: the once-per-model memory stays bounded
_logged_unpriced: set[tuple[str, str]] = set()


def request_cost(ex: Exchange) -> Cost:
    """The request's cost, computed on the first call and kept on the exchange."""
    if ex.cost is None:
        ex.cost = _cost(ex)
    return ex.cost


def cost_header(cost: Cost) -> tuple[str, str]:
    return COST_HEADER, format_usd(cost.usd)


def format_usd(usd: float) -> str:
    """Enough digits for a single cheap token (1e-9 USD) without float noise."""
    return f"{usd:.10f}".rstrip("0").rstrip(".") or "0"


def _cost(ex: Exchange) -> Cost:
    provider, endpoint = ex.provider, ex.endpoint
    if ex.cache_status == "HIT" or provider is None or endpoint is None or endpoint.operation not in _BILLED:
        return FREE  # no provider was asked, or asked for what it does not bill (a token count)
    usage = billed_usage(ex)
    if usage is None:
        return FREE  # refused or failed before anything was generated
    record = kind_of(provider)
    kind = priced_kind(provider)
    prices = ex.snapshot.prices
    model = asked_model(ex)
    cost = prices.cost(kind, priced_model(provider, model), usage)
    answered = ex.answer.model if ex.answer else ex.assembler.model if ex.assembler else ""
    if not cost.priced and answered and answered != model:
        cost = prices.cost(kind, answered, usage)
    if cost.priced:
        return cost
    if record.answers_locally:
        return FREE
    _unpriced(ex, provider.name, model)
    return cost


def priced_kind(provider: Provider) -> str:
    """The key of the price table a provider's models are priced under."""
    return provider.priced_as or kind_of(provider).name


def deployment_model(provider: Provider, model: str) -> str | None:
    """The model an Azure deployment named `model` serves, when the provider lists it."""
    return next((served for deployment, served in provider.azure_deployments if deployment == model), None)


def priced_model(provider: Provider, model: str) -> str:
    """The model `model` is priced as: a listed deployment's, else itself."""
    return deployment_model(provider, model) or model


def asked_model(ex: Exchange) -> str:
    """The model the provider that answered was asked for (a pool's member may name its own)."""
    target = ex.target
    if target is None:
        return ex.model
    if target.pooled and ex.answered_by is not None:
        return target.model_for(ex.answered_by.name, ex.model)
    return target.upstream_model or ex.model


def billed_usage(ex: Exchange) -> Usage | None:
    """The provider's count, else the estimate the limits settle with; None when nothing was generated."""
    usage, _ = usage_seen(ex)
    return None if usage is NOTHING else usage


def _unpriced(ex: Exchange, provider: str, model: str) -> None:
    labelled(UNPRICED_REQUESTS, provider, ex.snapshot.router.model_label(model)).inc()
    key = (provider, model)
    if key in _logged_unpriced or len(_logged_unpriced) >= _MAX_LOGGED:
        return
    _logged_unpriced.add(key)
    log.warning(
        "no price for model %r of provider %r: its requests cost 0 (add it under prices: in gateway.yaml)",
        model,
        provider,
    )


def count_cost(ex: Exchange, cost_usd: float) -> None:
    """The request's cost, or what its cache hit saved, in the metrics (labels from the configuration)."""
    hit = ex.cache_status == "HIT"
    usd = ex.saved_usd if hit else cost_usd
    if usd <= 0:
        return
    router, identity = ex.snapshot.router, ex.identity
    tenant = router.tenant_label(identity.tenant, identity.method)
    labelled(COST_SAVED_USD if hit else COST_USD, ex.route, ex.provider_name, router.model_label(ex.model), tenant).inc(
        usd
    )
