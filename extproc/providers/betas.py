"""An Anthropic client's `anthropic-beta` values, as Claude on another service takes them.

Anthropic's own API judges its betas: they go on as the client sent them. Bedrock's InvokeModel
(in the body's `anthropic_beta`) and Vertex AI (in the header) refuse a request naming a beta they
do not take with a 400 (`invalid beta flag`): their names for a beta are used where they differ
(the kind's `beta_renames`), and a provider's `anthropic_betas`, when set, is the only ones that go
on; the others are dropped and named, or refused, per the provider's `unsupported` policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from extproc.config.model import Provider
from extproc.providers import model_kind

BETA_FEATURE = "anthropic-beta"


@dataclass(frozen=True, slots=True)
class ProviderBetas:
    kept: tuple[str, ...]  # as the service names them, each once, in the client's order
    left_out: tuple[str, ...]  # the client's values the provider's `anthropic_betas` does not list


def dropped_name(beta: str) -> str:
    """A beta left out, as x-gateway-dropped-features names it."""
    return f"{BETA_FEATURE}:{beta}"


def left_out_names(provider: Provider, model: str, asked: tuple[str, ...]) -> list[str]:
    """The client's betas `provider` does not get, named (a pool's answer names its attempt's)."""
    return [dropped_name(beta) for beta in provider_betas(provider, model, asked).left_out] if asked else []


def provider_betas(provider: Provider, model: str, asked: tuple[str, ...]) -> ProviderBetas:
    renames = dict(model_kind(provider, model).beta_renames)
    allowed = provider.anthropic_betas
    kept: list[str] = []
    left_out: list[str] = []
    for beta in asked:
        name = renames.get(beta, beta)
        if allowed is not None and name not in allowed:
            left_out.append(beta)
        elif name not in kept:
            kept.append(name)
    return ProviderBetas(tuple(kept), tuple(left_out))
