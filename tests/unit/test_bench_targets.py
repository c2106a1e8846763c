"""The side-by-side harness's extra targets (bench/peers_target.py) stay valid configs as the schema moves,
and the in-process bench (bench/in_process.py) still drives whole requests."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from bench.in_process import MODES, messages, processor
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


@pytest.mark.parametrize("mode", MODES)
def test_the_in_process_bench_drives_a_whole_request_of_each_mode(mode: str) -> None:
    """Every message of the request is answered (a refused request would stop after one or two),
    and the provider's answer reaches the client's format."""
    service, sent = processor(), messages(mode)

    async def answers() -> list[ProcessingResponse]:
        async def feed() -> AsyncIterator[ProcessingRequest]:
            for message in sent:
                yield message

        return [r async for r in service.process({"x-gw-pass": "router", "x-gw-listener": "main"}, feed())]

    replies = asyncio.run(answers())
    assert len(replies) == len(sent) == 4
    assert all(not reply.HasField("immediate_response") for reply in replies)
    body = replies[-1].response_body.response.body_mutation.body
    if mode.startswith("x"):  # translated: the client gets OpenAI's format back
        assert b"chat.completion" in body and b"Benchmark" in body
    if mode.startswith("rx"):  # the Responses API's
        assert b'"response.completed"' in body if mode.endswith("stream") else b'"object":"response"' in body
        assert b"Benchmark" in body
