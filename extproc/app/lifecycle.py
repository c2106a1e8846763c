"""Process lifecycle: serve the ext_proc (gRPC + admin HTTP), or run the whole local stack with Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from extproc.app.google_tokens import GoogleTokens
from extproc.app.reload import Reloader
from extproc.app.workers import Worker, send_config, start_workers, stop_workers, supervise
from extproc.budgets.report import spend_report
from extproc.config.load import instance_run_dir
from extproc.config.model import GatewayConfig, host_and_port, socket_path
from extproc.cores import envoy_threads
from extproc.heap import return_freed_memory, settle_heap
from extproc.observe.admin import build_admin_app, start_admin
from extproc.observe.logs import set_level, setup_logging
from extproc.provider_kinds import KINDS
from extproc.server.service import build_server, peer_token
from extproc.state import GatewayState
from extproc.store.base import StoreError
from extproc.xds import render
from extproc.xds.envoy_admin import EnvoyAdmin
from extproc.xds.render_credentials import secrets_dir
from extproc.xds.render_peer import ensure_token, token_file

log = logging.getLogger("extproc")


async def serve(
    config: GatewayConfig,
    stop: asyncio.Event | None = None,
    with_envoy: bool = False,
    config_path: Path | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`); in-flight streams get `grace_period_s` to finish.
    With a config file, changes to it are reloaded while traffic flows."""
    setup_logging(config.log_level)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    state = GatewayState(config)
    serving = False
    addresses = config.extproc.grpc_addresses()
    if with_envoy and config.extproc.on_tcp:
        ensure_token(secrets_dir(Path(config.envoy.xds_dir)))  # before the servers read it; Envoy gets it rendered
    server = build_server(state, addresses[0])
    if config.extproc.on_tcp:
        _warn_tcp(config, with_envoy)
    await server.start()
    workers = start_workers(config)
    await _wait_serving(addresses[1:])
    settle_heap()
    background = [
        asyncio.ensure_future(supervise(lambda: state.snapshot.config, workers)),
        asyncio.ensure_future(return_freed_memory()),
    ]
    # Envoy is ours to follow when we run it or write its xDS directory: its admin port is in the config.
    manages_xds = with_envoy or Path(config.envoy.xds_dir).is_dir()
    envoy_admin = EnvoyAdmin.of(config.envoy) if manages_xds else None
    tokens = GoogleTokens()  # Vertex AI's access tokens, minted here and handed to Envoy
    if manages_xds:
        await tokens.follow(config)
    reloader = None
    if config_path is not None:
        reloader = Reloader(
            config_path, state, manages_xds, envoy_admin, after_swap=lambda new: _follow(new, workers, tokens)
        )
        background.append(asyncio.ensure_future(reloader.watch()))

    async def is_ready() -> bool:
        """Ready once we serve, config changes are seen, and Envoy's listeners are up (not merely launched)."""
        watching = reloader is None or reloader.watching.is_set()
        return serving and watching and (envoy_admin is None or await envoy_admin.ready())

    async def status() -> dict[str, Any]:
        config = state.snapshot.config
        loaded = reloader.status() if reloader else {"path": None, "version": config.text_hash}
        return {"config": loaded, "providers": await state.breakers.status(_upstream_names(config), config.breakers)}

    async def breaker_states() -> dict[str, int]:
        """Every provider of the config in force: one a reload removed leaves no series behind."""
        config = state.snapshot.config
        return await state.breakers.states(_upstream_names(config), config.breakers)

    async def store_reachable() -> bool | None:
        if state.snapshot.config.store.backend != "redis":
            return None
        try:
            await state.store.ping()
        except StoreError:
            return False
        return True

    admin_app = build_admin_app(
        is_ready,
        reloader.reload if reloader else None,
        lambda: state.snapshot.config.extproc.admin_token,
        status,
        store_reachable,
        lambda: spend_report(state.snapshot.config.limits, state.store),
        breaker_states,
    )
    admin = await start_admin(admin_app, config.extproc.admin_address, config.extproc.admin_port)
    if with_envoy:
        remove_stale_run_files()
    envoy = await start_envoy(config) if with_envoy else None
    serving = True
    _announce(config, with_envoy, config_path)
    ended = [asyncio.ensure_future(stop.wait())] + ([asyncio.ensure_future(envoy.wait())] if envoy else [])
    await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)

    serving = False
    log.info("shutting down", extra={"grace_s": config.extproc.grace_period_s})
    for task in background + ended:
        task.cancel()
    tokens.stop()
    if envoy is not None:
        await stop_envoy(config, envoy)
    grace = config.extproc.grace_period_s
    await asyncio.gather(stop_workers(workers, grace), server.stop(grace))
    await admin.cleanup()
    await asyncio.to_thread(state.close_tracing)  # the spans still queued go out (the exporter's timeout bounds it)
    if envoy is not None:
        _remove_instance_files(Path(state.snapshot.config.envoy.xds_dir))


def _upstream_names(config: GatewayConfig) -> list[str]:
    """The providers requests are sent to (the ones with breakers)."""
    return [p.name for p in config.providers if not KINDS[p.kind].answers_locally]


def _warn_tcp(config: GatewayConfig, with_envoy: bool) -> None:
    """The ext_proc on TCP: say what the port trusts (README, Security boundaries)."""
    where = ", ".join(config.extproc.grpc_addresses())
    if peer_token(config) is None:
        log.warning(
            "the ext_proc serves gRPC on TCP with no Envoy token to check: any process that can reach "
            f"{where} can act as Envoy, feed forged answers into a tenant's cache and settle made-up usage; "
            "render Envoy's files with this gateway (extproc render, or run), or use extproc.unix_socket"
        )
        return
    if with_envoy:  # `extproc run` could not use a Unix socket
        log.warning(
            f"the ext_proc serves gRPC on TCP {where}, not on a Unix socket: any local process can connect; it "
            "serves only peers that show the token Envoy reads from "
            f"{token_file(secrets_dir(Path(config.envoy.xds_dir))).resolve()}. Set extproc.unix_socket to a "
            "path shorter than 100 bytes in a directory you can write to keep the port closed"
        )


def remove_stale_run_files(run_root: Path = Path(".run")) -> None:
    """`.run/<pid>` of instances that died without their shutdown (killed, crashed): their process is
    gone, so nothing reads those files or dials that socket again. A live process's stay, whoever's."""
    if not run_root.is_dir():
        return
    for entry in run_root.iterdir():
        if entry.name.isdigit() and not _alive(int(entry.name)):
            shutil.rmtree(entry, ignore_errors=True)
            log.info("removed the run files of a stopped instance", extra={"path": str(entry)})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _remove_instance_files(xds_dir: Path) -> None:
    """The run files of this instance go with it; a directory the operator named stays."""
    own = instance_run_dir().resolve()
    if xds_dir.resolve().is_relative_to(own):
        shutil.rmtree(own, ignore_errors=True)
    else:  # only the ext_proc's sockets were there, removed as their servers stopped
        with contextlib.suppress(OSError):
            own.rmdir()


async def _follow(config: GatewayConfig, workers: list[Worker], tokens: GoogleTokens) -> None:
    """After this process swapped to a reloaded config: its log level, its minted tokens, then every worker."""
    set_level(config.log_level)
    await tokens.follow(config)
    await send_config(workers, config)


async def stop_envoy(config: GatewayConfig, envoy: asyncio.subprocess.Process) -> None:
    """Drain Envoy's requests in flight, then stop it (killed if it lingers)."""
    if envoy.returncode is not None:
        return
    await drain_envoy(config, config.extproc.grace_period_s)
    envoy.terminate()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(envoy.wait(), 10)
    if envoy.returncode is None:
        envoy.kill()


async def _wait_serving(addresses: list[str], timeout_s: float = 30) -> None:
    """Worker processes are ready once their address accepts a connection."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    for address in addresses:
        while True:
            try:
                if (path := socket_path(address)) is not None:
                    _, writer = await asyncio.open_unix_connection(path)
                else:
                    _, writer = await asyncio.open_connection(*host_and_port(address))
                writer.close()
                break
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"ext_proc worker at {address} did not start") from None
                await asyncio.sleep(0.05)


async def drain_envoy(config: GatewayConfig, grace_s: float) -> None:
    """Stop accepting connections, then wait (up to `grace_s`) for requests in flight to finish."""
    try:
        await EnvoyAdmin.of(config.envoy).drain(grace_s)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as error:
        log.warning("could not drain envoy", extra={"error": str(error)})


async def start_envoy(config: GatewayConfig) -> asyncio.subprocess.Process:
    xds_dir = Path(config.envoy.xds_dir)
    render.write_xds(config, xds_dir)
    bootstrap = render.write_bootstrap(config, xds_dir)
    args = [render.envoy_binary(), "-c", str(bootstrap), "-l", "warning", "--log-format", "%L %n: %v"]
    args += ["--concurrency", str(envoy_threads(config.envoy.concurrency))]
    args += ["--base-id", str(config.envoy.base_id)] if config.envoy.base_id is not None else ["--disable-hot-restart"]
    # Its own session: a terminal's Ctrl-C reaches only us, and we drain Envoy before stopping it.
    return await asyncio.create_subprocess_exec(*args, start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """Envoy gets SIGTERM if this process dies without stopping it (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _announce(config: GatewayConfig, with_envoy: bool, config_path: Path | None) -> None:
    """Every port and socket this instance opened, and where its run files are."""
    lines = [f"  config              {config_path or '<embedded default>'} (version {config.text_hash})"]
    if with_envoy:
        for listener in config.listeners:
            scheme = "https" if listener.tls_cert_file else "http"
            lines.append(f"  gateway ({listener.name})  {scheme}://{listener.address}:{listener.port}")
        envoy = config.envoy
        if envoy.ready_port is not None:
            lines.append(f"  envoy ready, stats  http://{envoy.ready_address}:{envoy.ready_port}/ready")
        where = f"unix:{envoy.admin_socket}" if envoy.admin_socket else f"http://127.0.0.1:{envoy.admin_port}"
        lines.append(f"  envoy admin         {where}")
        lines.append(f"  envoy xDS files     {Path(envoy.xds_dir).resolve()}")
    transport = ""
    if config.extproc.on_tcp:  # the warning above says what that means
        transport = "  (TCP: Envoy's token required)" if peer_token(config) else "  (TCP: open to any local process)"
    lines.append(f"  ext_proc gRPC       {', '.join(config.extproc.grpc_addresses())}{transport}")
    admin = f"http://{config.extproc.admin_address}:{config.extproc.admin_port}"
    lines.append(f"  health / metrics    {admin}/healthz  {admin}/readyz  {admin}/metrics  {admin}/status")
    print("LLM gateway is up:\n" + "\n".join(lines), file=sys.stderr, flush=True)


def run(config: GatewayConfig, with_envoy: bool, config_path: Path | None = None) -> None:
    uvloop.run(serve(config, with_envoy=with_envoy, config_path=config_path))
