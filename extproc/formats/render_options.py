"""What a provider side is asked to render, what it renders, and what it does with a feature
the provider lacks: drop it and name it, or refuse the request (the provider's `unsupported`
policy), decided in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from extproc.formats.client_errors import invalid

UnsupportedPolicy = Literal["drop", "reject"]
Asked = Callable[[Any], bool]  # whether a parameter's value asks for anything
# The canonical request's plain parameters a provider has no field for, each with when it counts
# as asked (provider_params.lacking makes it from a kind record's `unsupported`, once per record)
Lacking = tuple[tuple[str, Asked], ...]


@dataclass(slots=True)
class RenderOptions:
    model: str  # the provider's model name
    unsupported: UnsupportedPolicy = "drop"
    default_max_tokens: int = 4096  # Anthropic requires max_tokens
    lacks: Lacking = ()  # dropped and named, or refused, when asked
    # Vertex AI: the model named by the path only (Claude's body, Gemini's countTokens), and
    # `anthropic_version` in Claude's body (read by the Anthropic renderer and Gemini's count)
    model_in_body: bool = True
    body_fields: tuple[tuple[str, str], ...] = ()
    # An Anthropic client's `anthropic-beta` values, for a provider that takes them in the body
    # (Claude on Bedrock: InvokeModel's `anthropic_beta`, Converse's additionalModelRequestFields);
    # a provider of Anthropic's API gets the header itself
    betas: tuple[str, ...] = ()
    betas_listed: bool = False  # the provider lists the betas it takes (`anthropic_betas`)


@dataclass(slots=True)
class RenderedRequest:
    body: bytes
    dropped: list[str] = field(default_factory=list)  # features left out (reported to the client)


class Unsupported:
    """The features one request loses at one provider, each named once; under the `reject` policy
    the first one is a 400 naming the client's field instead."""

    __slots__ = ("dropped", "policy", "provider")

    def __init__(self, policy: str, provider: str = "this provider") -> None:
        self.policy = policy
        self.provider = provider  # as the refusal names it
        self.dropped: list[str] = []

    def lacks(self, feature: str, param: str | None = None) -> None:
        """Dropped and named, or refused, per the policy; `param` is the client's field (the
        feature's name when not given)."""
        if self.policy == "reject":
            raise invalid(f"{feature} is not supported by {self.provider}", feature if param is None else param)
        self.drop(feature)

    def drop(self, feature: str) -> None:
        """Dropped and named whatever the policy (the provider refuses it, or a faithful adaptation
        leaves it out)."""
        if feature not in self.dropped:
            self.dropped.append(feature)
