"""What a provider side is asked to render, what it renders, and what it does with a feature
the provider lacks: drop it and name it, or refuse the request (the provider's `unsupported`
policy), decided in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from extproc.formats.client_errors import invalid

UnsupportedPolicy = Literal["drop", "reject"]


@dataclass(slots=True)
class RenderOptions:
    model: str  # the provider's model name
    unsupported: UnsupportedPolicy = "drop"
    default_max_tokens: int = 4096  # Anthropic requires max_tokens
    # An Anthropic client's `anthropic-beta` values, for a provider that takes them in the body
    # (Claude on Bedrock's InvokeModel); a provider of Anthropic's API gets the header itself
    betas: tuple[str, ...] = ()


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
