"""The docs pages of the clients and their recorded requests follow the pinned versions: moving a
pin (tests/clients/package.json, uv.lock) means re-recording (make record-clients) and re-reading
what the docs claim about that version."""

from __future__ import annotations

from importlib.metadata import version as installed_version

import pytest

from tests.clients.recording import recordings
from tests.clients.runners import pinned_version
from tests.support.cli import REPO

PINS = [
    ("claude-code", pinned_version("@anthropic-ai/claude-code"), "claude-code.md"),
    ("codex", pinned_version("@openai/codex"), "codex.md"),
    ("openai-agents", installed_version("openai-agents"), "openai-agents.md"),
]


@pytest.mark.parametrize(("client", "version", "page"), PINS, ids=[pin[0] for pin in PINS])
def test_recordings_and_docs_are_of_the_pinned_version(client: str, version: str, page: str) -> None:
    names = [path.name for path in recordings(f"{client}-")]
    assert names, f"no recorded requests of {client}"
    assert all(name.startswith(f"{client}-{version}.") for name in names), (
        f"{client} is pinned at {version} but the recordings are {names}: run make record-clients"
    )
    assert version in (REPO / "docs" / "clients" / page).read_text(), f"docs/clients/{page} does not name {version}"
