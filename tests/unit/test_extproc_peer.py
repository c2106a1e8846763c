"""Who the ext_proc's gRPC server serves: on TCP, a connection once it showed Envoy's token; and the
token Envoy gets rendered with, kept from one rendering to the next."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import yaml
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, ProcessingRequest

from extproc.config.load import load_text
from extproc.contract import EXTPROC_TOKEN_HEADER
from extproc.server.h2_server import GrpcServer
from extproc.xds.render import write_clusters
from extproc.xds.render_credentials import secrets_dir
from extproc.xds.render_peer import read_token
from tests.support.stack import free_port
from tests.unit.test_h2_server import echo

TOKEN = "envoys-own-token"
REQUEST = ProcessingRequest(request_body=HttpBody(body=b"x", end_of_stream=True))


async def call(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
    try:
        answers = [a async for a in stub.Process(iter([REQUEST]), metadata=metadata)]
    except grpc.aio.AioRpcError as error:
        return error.code()
    assert len(answers) == 1
    return grpc.StatusCode.OK


def outcomes(*metadatas: tuple[tuple[str, str], ...], token: str | None = TOKEN) -> list[grpc.StatusCode]:
    """Each call in turn on one channel (one connection while the server keeps it)."""

    async def run() -> list[grpc.StatusCode]:
        server = GrpcServer(echo, f"127.0.0.1:{free_port()}", token=token)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                return [await call(channel, metadata) for metadata in metadatas]
        finally:
            await server.stop(1)

    return asyncio.run(run())


def test_a_tcp_peer_without_the_token_is_unauthenticated() -> None:
    for metadata in ((), ((EXTPROC_TOKEN_HEADER, "guess"),), ((EXTPROC_TOKEN_HEADER, TOKEN[:-1]),)):
        assert outcomes(metadata) == [grpc.StatusCode.UNAUTHENTICATED]


def test_a_tcp_peer_with_the_token_is_served_and_so_is_the_rest_of_its_connection() -> None:
    assert outcomes(((EXTPROC_TOKEN_HEADER, TOKEN),), ()) == [grpc.StatusCode.OK] * 2


def test_without_a_token_to_check_every_peer_is_served() -> None:
    assert outcomes((), token=None) == [grpc.StatusCode.OK]


def test_on_a_unix_socket_no_token_is_asked_for(tmp_path: Path) -> None:
    async def run() -> grpc.StatusCode:
        server = GrpcServer(echo, f"unix:{tmp_path / 'x.sock'}", token=TOKEN)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                return await call(channel, ())
        finally:
            await server.stop(1)

    assert asyncio.run(run()) == grpc.StatusCode.OK  # this uid: the kernel vouches for it


def _extproc_cluster(xds: Path) -> dict:
    cds = yaml.safe_load((xds / "cds.yaml").read_text())
    return next(c for c in cds["resources"] if c["name"] == "extproc")


def test_on_tcp_envoy_gets_the_token_from_an_sds_file_that_outlives_renderings(tmp_path: Path) -> None:
    config = load_text("providers: [{name: m, kind: mock}]\n", {}, tmp_path)
    write_clusters(config, tmp_path / "xds")
    token = read_token(secrets_dir(tmp_path / "xds"))
    assert token and len(token) >= 32
    options = _extproc_cluster(tmp_path / "xds")["typed_extension_protocol_options"]
    (http_options,) = options.values()
    injector = http_options["http_filters"][0]["typed_config"]["credential"]["typed_config"]
    assert injector["header"] == EXTPROC_TOKEN_HEADER and "inline_string" not in str(injector)
    mode = (secrets_dir(tmp_path / "xds") / "extproc_token.yaml").stat().st_mode & 0o777
    assert mode == 0o600
    write_clusters(config, tmp_path / "xds")  # a reload renders again: the same token
    assert read_token(secrets_dir(tmp_path / "xds")) == token


def test_on_a_unix_socket_envoy_sends_no_token(tmp_path: Path) -> None:
    config = load_text(
        f"providers: [{{name: m, kind: mock}}]\nextproc: {{unix_socket: {tmp_path}/e.sock}}\n", {}, tmp_path
    )
    write_clusters(config, tmp_path / "xds")
    (http_options,) = _extproc_cluster(tmp_path / "xds")["typed_extension_protocol_options"].values()
    assert "http_filters" not in http_options and read_token(secrets_dir(tmp_path / "xds")) is None
