"""Extra ext_proc worker processes: each serves gRPC on its own address, as one endpoint
of Envoy's ext_proc cluster, so every core is used. Nothing is shared between them
but what travels through Envoy; metrics are merged through prometheus-client's
multiprocess mode."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from extproc.config.model import GatewayConfig

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)


def prepare_multiprocess_metrics(config: GatewayConfig) -> None:
    """Before prometheus_client is imported: with several processes, metrics live in shared files."""
    if config.extproc.workers > 1 and not os.environ.get(METRICS_DIR_ENV):
        os.environ[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="extproc-metrics-")


def start_workers(config: GatewayConfig, path: Path | None = None) -> list[multiprocessing.process.BaseProcess]:
    """Start workers 1..N-1 (the calling process serves address 0); `path` is the file they reload."""
    return [_start_worker(config, index, path) for index in range(1, config.extproc.workers)]


def signal_workers(workers: list[multiprocessing.process.BaseProcess], signum: int) -> None:
    for process in workers:
        if process.is_alive() and process.pid:
            os.kill(process.pid, signum)


def _start_worker(config: GatewayConfig, index: int, path: Path | None) -> multiprocessing.process.BaseProcess:
    context = multiprocessing.get_context("spawn")  # no fork after gRPC started
    process = context.Process(target=_worker_main, args=(config, index, path), name=f"extproc-worker-{index}")
    process.start()
    return process


async def supervise(
    current: Callable[[], GatewayConfig], workers: list[multiprocessing.process.BaseProcess], path: Path | None = None
) -> None:
    """Restart a worker that died, with the configuration in force (its endpoint stays in
    Envoy's cluster); runs until cancelled."""
    while True:
        await asyncio.sleep(0.5)
        for slot, process in enumerate(workers):
            if not process.is_alive():
                log.warning("worker died; restarting", extra={"worker": slot + 1, "exitcode": process.exitcode})
                _mark_dead(process.pid)
                workers[slot] = _start_worker(current(), slot + 1, path)


async def stop_workers(workers: list[multiprocessing.process.BaseProcess], grace_s: float) -> None:
    """SIGTERM lets each worker finish its streams in flight; kill what outlives the grace period."""
    signal_workers(workers, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    for process in workers:
        await loop.run_in_executor(None, process.join, grace_s + 2)
        if process.is_alive():
            process.kill()
        _mark_dead(process.pid)


def _mark_dead(pid: int | None) -> None:
    if pid and os.environ.get(METRICS_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _worker_main(config: GatewayConfig, index: int, path: Path | None) -> None:
    import uvloop

    uvloop.run(_serve_worker(config, index, path))


async def _serve_worker(config: GatewayConfig, index: int, path: Path | None) -> None:
    from extproc.config.reload import Reloader
    from extproc.observe.logs import setup_logging
    from extproc.server.service import build_server
    from extproc.state import GatewayState

    setup_logging(config.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the parent decides when to stop
    state = GatewayState(config)
    if path is not None:  # the main process validated and swapped already; follow it
        reloader = Reloader(path, state, write_xds=False)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reloader.reload()))
    else:
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
    server = build_server(state, config.extproc.grpc_addresses()[index])
    await server.start()
    await stop.wait()
    await server.stop(config.extproc.grace_period_s)
