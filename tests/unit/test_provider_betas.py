"""An Anthropic client's betas on Claude elsewhere (providers.betas): Bedrock's and Vertex AI's names
for a beta, and a provider's own list of the betas it takes. Through the real Envoy:
tests/integration/test_bedrock.py and test_vertex.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extproc.config.load import ConfigError, load_text
from extproc.config.model import Provider
from extproc.providers.betas import provider_betas

TOOL_SEARCH, ITS_BEDROCK_NAME = "advanced-tool-use-2025-11-20", "tool-search-tool-2025-10-19"
THINKING = "interleaved-thinking-2025-05-14"
CLAUDE_ON_BEDROCK = "us.anthropic.claude-sonnet-4-20250514-v1:0"


def _provider(kind: str, **options: Any) -> Provider:
    """One provider of `kind`, loaded as gateway.yaml gives it."""
    extra = {
        "bedrock": "bedrock: {region: us-east-1}, aws_credentials: {source: environment}",
        "anthropic": "api_key_env: K",
    }[kind]
    listed = f", anthropic_betas: {options['anthropic_betas']}" if "anthropic_betas" in options else ""
    text = f"providers:\n  - {{name: p, kind: {kind}, base_url: 'https://x.example', {extra}{listed}}}\n"
    text += "routes:\n  - {model: '*', provider: p}\n"
    config = load_text(text, {"K": "k"}, Path("."))
    return config.providers[0]


def test_bedrock_gets_anthropics_tool_search_beta_by_its_own_name_and_each_beta_once() -> None:
    taken = provider_betas(_provider("bedrock"), CLAUDE_ON_BEDROCK, (THINKING, TOOL_SEARCH, ITS_BEDROCK_NAME))
    assert taken.kept == (THINKING, ITS_BEDROCK_NAME) and taken.left_out == ()


def test_anthropics_own_api_gets_the_betas_as_the_client_named_them() -> None:
    taken = provider_betas(_provider("anthropic"), "claude-sonnet-4-6", ("claude-code-20250219", TOOL_SEARCH))
    assert taken.kept == ("claude-code-20250219", TOOL_SEARCH) and taken.left_out == ()


def test_a_providers_list_keeps_only_its_betas_and_leaves_out_the_others_by_the_clients_names() -> None:
    provider = _provider("bedrock", anthropic_betas=f"[{ITS_BEDROCK_NAME}]")
    taken = provider_betas(provider, CLAUDE_ON_BEDROCK, ("claude-code-20250219", TOOL_SEARCH, THINKING))
    assert taken.kept == (ITS_BEDROCK_NAME,)
    assert taken.left_out == ("claude-code-20250219", THINKING)
    nothing = provider_betas(_provider("bedrock", anthropic_betas="[]"), CLAUDE_ON_BEDROCK, (THINKING,))
    assert nothing.kept == () and nothing.left_out == (THINKING,)  # []: none at all


def test_a_list_of_betas_is_refused_on_a_provider_whose_service_judges_its_own() -> None:
    with pytest.raises(ConfigError) as error:
        _provider("anthropic", anthropic_betas=f"[{THINKING}]")
    assert "providers[0].anthropic_betas: only for kinds 'bedrock' and 'vertex'" in error.value.problems
