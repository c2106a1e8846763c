"""The side-by-side harness's extra targets (bench/peers_target.py) stay valid configs as the schema moves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from bench.peers_target import CLIENT_KEY, PORT_BASE, gateway_config
from extproc.auth.apikeys import hash_key
from extproc.config.load import load_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("variant", sorted(PORT_BASE))
def test_each_peers_target_renders_a_config_the_gateway_loads(tmp_path: Path, variant: str) -> None:
    models = ["fake-model", "fake-model-x", "claude-sonnet-4-5"]
    raw = gateway_config(variant, 18170, "http://127.0.0.1:1/v1", "http://127.0.0.1:1", tmp_path, models)
    config = load_text(yaml.safe_dump(raw), {"OURS_UPSTREAM_KEY": "k"}, tmp_path)
    assert config.auth.configured and hash_key(CLIENT_KEY) in config.auth.clients[0].key_hashes
    assert [route.model for route in config.routes] == models[:2]


def test_the_targets_file_names_every_variant_and_sends_the_client_key() -> None:
    targets = tomllib.loads((ROOT / "bench" / "peers-targets.toml").read_text())["target"]
    started = " ".join(command for target in targets for command in target["start"])
    assert all(f"bench.peers_target {variant} " in started for variant in PORT_BASE)
    assert {target["headers"]["Authorization"] for target in targets} == {f"Bearer {CLIENT_KEY}"}
