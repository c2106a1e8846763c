"""Extra ext_proc worker processes: each serves gRPC on its own address, as one endpoint
of Envoy's ext_proc cluster, so every core is used. Nothing is shared between them
but what travels through Envoy; metrics are merged through prometheus-client's
multiprocess mode.

A worker never reads gateway.yaml itself: the main process validates a config (and waits
for Envoy to apply it), then sends it down each worker's pipe; the worker swaps and acks.
So every process follows the one validated config, never a newer file half-way edited.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from extproc.config.model import GatewayConfig
from extproc.observe.logs import set_level

if TYPE_CHECKING:  # imported late at run time: prometheus_client must wait for the metrics dir
    from extproc.spend.prices import Price
    from extproc.state import GatewayState

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)


@dataclass(slots=True)
class Worker:
    index: int  # its gRPC address is grpc_addresses()[index]
    process: multiprocessing.process.BaseProcess
    channel: Connection  # the main process's end of its pipe: configs down, acks up
    generation: int = 0  # the last config generation sent


def prepare_multiprocess_metrics(config: GatewayConfig) -> None:
    """Before prometheus_client is imported: with several processes, metrics live in shared files."""
    if config.extproc.workers > 1 and not os.environ.get(METRICS_DIR_ENV):
        os.environ[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="extproc-metrics-")


def start_workers(config: GatewayConfig) -> list[Worker]:
    """Start workers 1..N-1 (the calling process serves address 0)."""
    return [_start_worker(config, index) for index in range(1, config.extproc.workers)]


@dataclass(frozen=True, slots=True)
class _Read:
    """What the main process read from YAML files for a worker: the worker never loads PyYAML."""

    token: str | None  # Envoy's token, for a TCP address (server/service.py peer_token)
    default_prices: dict[str, tuple[Price, ...]]


def _start_worker(config: GatewayConfig, index: int) -> Worker:
    from extproc.server.service import peer_token
    from extproc.spend.prices import default_prices

    context = multiprocessing.get_context("spawn")  # no fork after gRPC started
    ours, theirs = context.Pipe()
    read = _Read(peer_token(config), default_prices())
    process = context.Process(target=_worker_main, args=(config, index, theirs, read), name=f"extproc-worker-{index}")
    process.start()
    theirs.close()  # the child holds its own copy; ours sees EOF when the child dies
    return Worker(index, process, ours)


async def send_config(workers: list[Worker], config: GatewayConfig, timeout_s: float = 10.0) -> list[int]:
    """Send `config` to every worker and wait for each to swap; returns the indexes that did not ack
    (dead or stuck: the supervisor restarts a dead one with the config in force)."""
    results = await asyncio.gather(*(asyncio.to_thread(_deliver, worker, config, timeout_s) for worker in workers))
    missing = [worker.index for worker, acked in zip(workers, results, strict=True) if not acked]
    if missing:
        log.warning("workers did not acknowledge the new configuration", extra={"workers": missing})
    return missing


def _deliver(worker: Worker, config: GatewayConfig, timeout_s: float) -> bool:
    worker.generation += 1
    try:
        worker.channel.send((worker.generation, config))
        # Skip a late ack of an earlier generation that timed out.
        while worker.channel.poll(timeout_s):
            if worker.channel.recv() == worker.generation:
                return True
    except (OSError, EOFError):
        pass
    return False


async def supervise(current: Callable[[], GatewayConfig], workers: list[Worker]) -> None:
    """Restart a worker that died, with the configuration in force (its endpoint stays in
    Envoy's cluster); runs until cancelled."""
    while True:
        await asyncio.sleep(0.5)
        for slot, worker in enumerate(workers):
            if not worker.process.is_alive():
                log.warning(
                    "worker died; restarting", extra={"worker": worker.index, "exitcode": worker.process.exitcode}
                )
                _mark_dead(worker.process.pid)
                worker.channel.close()
                workers[slot] = _start_worker(current(), worker.index)


async def stop_workers(workers: list[Worker], grace_s: float) -> None:
    """SIGTERM lets each worker finish its streams in flight; kill what outlives the grace period."""
    for worker in workers:
        if worker.process.is_alive() and worker.process.pid:
            os.kill(worker.process.pid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    for worker in workers:
        await loop.run_in_executor(None, worker.process.join, grace_s + 2)
        if worker.process.is_alive():
            worker.process.kill()
        _mark_dead(worker.process.pid)
        worker.channel.close()


def _mark_dead(pid: int | None) -> None:
    if pid and os.environ.get(METRICS_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _worker_main(config: GatewayConfig, index: int, channel: Connection, read: _Read) -> None:
    import uvloop

    from extproc.spend.prices import hand_over_defaults

    hand_over_defaults(read.default_prices)
    uvloop.run(_serve_worker(config, index, channel, read.token))


async def _serve_worker(config: GatewayConfig, index: int, channel: Connection, token: str | None) -> None:
    from extproc.heap import return_freed_memory, settle_heap
    from extproc.observe.logs import setup_logging
    from extproc.server.service import ProcessorServer
    from extproc.state import GatewayState

    setup_logging(config.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the parent decides when to stop
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # configs come down the pipe, never from the file
    state = GatewayState(config)
    loop.add_reader(channel.fileno(), _follow, channel, state, loop)
    server = ProcessorServer(state, config.extproc.grpc_addresses()[index], token, worker=index)
    await server.start()
    settle_heap()
    trimming = asyncio.ensure_future(return_freed_memory())
    await stop.wait()
    trimming.cancel()
    await server.stop(config.extproc.grace_period_s)
    await asyncio.to_thread(state.close_tracing)


def _follow(channel: Connection, state: GatewayState, loop: asyncio.AbstractEventLoop) -> None:
    """Swap in the config the main process sent (its log level too), then ack its generation."""
    try:
        generation, config = channel.recv()
        state.swap(config)
        set_level(config.log_level)
        channel.send(generation)
    except (EOFError, OSError):  # the main process is gone; SIGTERM or the death signal follows
        loop.remove_reader(channel.fileno())
