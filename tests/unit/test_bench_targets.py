"""The side-by-side harness's extra targets (bench/peers_target.py) stay valid configs as the schema moves,
and the in-process bench (bench/in_process.py) still drives whole requests."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from bench.answers import ANSWER_TEXT, bedrock_converse_stream, openai_sse
from bench.in_process import MODES, messages, processor
from bench.paced import PacedStreams
from bench.peers_target import CLIENT_KEY, PORT_BASE, gateway_config
from bench.run import AGENT, PACED, CloudCredentials, Row, per_message_note, traced_gateway_config
from bench.run import gateway_config as gateway_bench_config
from extproc.auth.apikeys import hash_key
from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.formats.eventstream import EventStreamDecoder
from tests.support.otlp import OtlpReceiver

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
    (service, _), sent = processor(), messages(mode)

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


def _loaded(raw: dict[str, Any], base_dir: Path) -> GatewayConfig:
    """A bench gateway's config as GatewayStack writes it (the listener's port is the stack's)."""
    raw["listeners"] = [{"name": "main", "port": 18080}]
    return load_text(yaml.safe_dump(raw), {"BENCH_OPENAI_KEY": "k"}, base_dir)


def test_the_make_bench_gateways_load_with_the_cloud_kinds_and_tracing(tmp_path: Path) -> None:
    google_key = tmp_path / "google-key.json"
    google_key.write_text("{}")  # read by google-auth when minting, not when loading
    cloud = CloudCredentials(tmp_path / "aws-credentials", google_key)
    config = _loaded(gateway_bench_config("http://127.0.0.1:1", cloud), tmp_path)
    assert {p.kind for p in config.providers} >= {"bedrock", "vertex", "anthropic"}
    traced = _loaded(traced_gateway_config("http://127.0.0.1:1", OtlpReceiver("grpc")), tmp_path)
    assert traced.tracing is not None and traced.tracing.sample_ratio == 1.0


def test_the_fake_converse_stream_is_aws_event_stream_frames_carrying_the_answer() -> None:
    messages = EventStreamDecoder().feed(bedrock_converse_stream())
    kinds = [message.headers[":event-type"] for message in messages]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [
        json.loads(m.payload)["delta"]["text"] for m in messages if m.headers[":event-type"] == "contentBlockDelta"
    ]
    assert "".join(deltas) == ANSWER_TEXT


def test_the_in_process_bench_sends_a_chunked_stream_one_event_a_message_and_all_are_answered() -> None:
    (service, _), sent = processor(), messages("stream", chunked=True)
    answer = [m.response_body for m in sent if m.HasField("response_body")]

    async def replies() -> list[ProcessingResponse]:
        async def feed() -> AsyncIterator[ProcessingRequest]:
            for message in sent:
                yield message

        return [r async for r in service.process({"x-gw-pass": "router", "x-gw-listener": "main"}, feed())]

    assert len(answer) > 10 and all(body.body.count(b"\n\n") == 1 for body in answer)
    assert [body.end_of_stream for body in answer] == [False] * (len(answer) - 1) + [True]
    assert b"".join(body.body for body in answer) == openai_sse().encode()
    assert len(asyncio.run(replies())) == len(sent)


def test_the_paced_provider_writes_the_bench_answer_an_event_at_a_time() -> None:
    with (
        PacedStreams(pace_s=0.02) as paced,
        httpx.stream("POST", f"{paced.base_url}/v1/chat/completions", json={"stream": True}) as response,
    ):
        reads = list(response.iter_raw())
    assert b"".join(reads) == openai_sse().encode() and len(paced.events) > 10
    assert len(reads) > 1  # written apart, 20 ms between events: not one read


def test_make_bench_gives_the_cpu_of_each_answer_message_from_the_paced_agent_row() -> None:
    whole = Row(AGENT, 1, cpu_us_per_request=400.0, envoy_cpu_us_per_request=300.0, messages_per_request=4.0)
    paced = Row(PACED, 1, cpu_us_per_request=720.0, envoy_cpu_us_per_request=460.0, messages_per_request=20.0)
    other = Row(PACED, 32, cpu_us_per_request=1.0, messages_per_request=20.0)  # no agent row at 32
    assert per_message_note([whole, paced, other]) == [
        f"{PACED} c=1: 16.0 more messages a request than {AGENT}; CPU per extra message: ext_proc 20.0 µs, Envoy 10.0 µs"
    ]


def test_the_make_bench_gateway_routes_the_paced_model_to_the_paced_provider(tmp_path: Path) -> None:
    config = _loaded(gateway_bench_config("http://127.0.0.1:1", None, "http://127.0.0.1:2"), tmp_path)
    providers = {p.name: p for p in config.providers}
    assert providers["bench-openai-paced"].base_url == "http://127.0.0.1:2/v1"
    assert [r.provider for r in config.routes if r.model == "gpt-bench-paced"] == ["bench-openai-paced"]
