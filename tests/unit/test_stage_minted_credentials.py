"""MintedCredentialsStage driven alone with an Exchange: a Vertex AI provider is asked only while the
token the main process minted for it lasts (its expiry file says); otherwise a single provider is a
503 with retry-after, and a pool goes straight to a member that needs no minted token.

tests/integration/test_vertex.py drives the same through the real Envoy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from extproc.errors import GatewayError
from extproc.pipeline.exchange import PhaseReply
from extproc.pipeline.minted_credentials import MintedCredentialsStage
from extproc.routing import Target
from extproc.state import Snapshot
from extproc.xds.minted_tokens import expiry_file
from extproc.xds.render_credentials import secrets_dir
from tests.support.exchanges import PROVIDERS, at_body, chat, snapshot


def _snapshot(xds_dir: Path) -> Snapshot:
    return snapshot(
        PROVIDERS
        + f"""
  - {{name: vx, kind: vertex, vertex: {{project: p}}}}
envoy: {{xds_dir: "{xds_dir}"}}
routes:
  - name: pooled
    model: "pool-*"
    pool: [{{provider: vx, model: gemini-2.5-flash}}, {{provider: openai, priority: 1, model: gpt-4o-mini}}]
  - {{model: "gemini-*", provider: vx}}
  - {{model: "gpt-*", provider: openai}}
"""
    )


def _expires_in(state: Snapshot, seconds: float) -> None:
    provider = state.config.provider("vx")
    assert provider is not None
    path = expiry_file(provider, secrets_dir(Path(state.config.envoy.xds_dir)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{time.time() + seconds}\n")


def _run(state: Snapshot, model: str) -> tuple[Target | None, Target | None]:
    ex, raw = at_body(state, chat(model))
    before = ex.target
    assert asyncio.run(MintedCredentialsStage().request_body(ex, PhaseReply(), raw)) is None
    return before, ex.target


def test_a_live_token_lets_a_single_provider_and_a_pool_go_as_routed(tmp_path: Path) -> None:
    state = _snapshot(tmp_path)
    _expires_in(state, 600)
    for model in ("gemini-2.5-flash", "pool-1", "gpt-4o"):
        before, after = _run(state, model)
        assert after is before


@pytest.mark.parametrize("expires_in", [None, -5.0])
def test_a_single_provider_without_a_live_token_is_a_503_with_retry_after(
    tmp_path: Path, expires_in: float | None
) -> None:
    state = _snapshot(tmp_path)
    if expires_in is not None:
        _expires_in(state, expires_in)
    with pytest.raises(GatewayError) as caught:
        _run(state, "gemini-2.5-flash")
    error = caught.value
    assert (error.status, error.code) == (503, "provider_credential_expired")
    assert int(dict(error.headers)["retry-after"]) >= 1
    assert _run(state, "gpt-4o")[1] is not None  # a keyed provider is not concerned


def test_a_pool_skips_a_member_without_a_live_token(tmp_path: Path) -> None:
    state = _snapshot(tmp_path)
    _expires_in(state, -5)
    before, after = _run(state, "pool-1")
    assert before is not after and after is not None
    assert not after.pooled
    assert after.provider.name == "openai" and after.upstream_model == "gpt-4o-mini"
