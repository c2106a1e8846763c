"""Reload gateway.yaml while traffic flows: validate everything, then swap.

On any error the running configuration stays, the problems are logged and counted. A
good file is refused whole if it changes a setting only a restart can apply
(config/restart.py). Otherwise, when this process manages Envoy's xDS directory, it is
rendered there (checked by `envoy --mode validate`) and, when Envoy's admin is known,
the swap waits until Envoy acknowledged it (config/xds_sync.py): the ext_proc never routes
to a cluster Envoy does not have. Then the ext_proc's state is swapped and the workers
follow; requests in flight keep the snapshot they started with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from extproc.config.load import ConfigError, load_file
from extproc.config.model import GatewayConfig
from extproc.config.restart import restart_required
from extproc.config.xds_sync import apply_to_envoy
from extproc.envoy_admin import EnvoyAdmin
from extproc.observe.metrics import CONFIG_RELOADS
from extproc.state import GatewayState

log = logging.getLogger(__name__)

ENVOY_ACK_TIMEOUT_S = 15.0


@dataclass(slots=True)
class ReloadResult:
    ok: bool
    problems: list[str] = field(default_factory=list)


async def _no_followers(_: GatewayConfig) -> None:
    return None


class Reloader:
    def __init__(
        self,
        path: Path,
        state: GatewayState,
        write_xds: bool,
        envoy: EnvoyAdmin | None = None,
        after_swap: Callable[[GatewayConfig], Awaitable[object]] = _no_followers,
        envoy_ack_timeout_s: float = ENVOY_ACK_TIMEOUT_S,
    ) -> None:
        self._path = path
        self._state = state
        self._write_xds = write_xds
        self._envoy = envoy
        self._after_swap = after_swap  # the workers follow the swapped config
        self._ack_timeout_s = envoy_ack_timeout_s
        self._lock = asyncio.Lock()  # one reload at a time

    async def reload(self) -> ReloadResult:
        async with self._lock:
            try:
                return await self._reload()
            except Exception as error:  # e.g. the validation's subprocess.TimeoutExpired: never escape
                log.exception("configuration reload failed unexpectedly; keeping the running one")
                return self._failed([f"reload failed: {type(error).__name__}: {error}"])

    async def _reload(self) -> ReloadResult:
        try:
            config = load_file(self._path)
        except ConfigError as error:
            return self._failed(error.problems)
        except OSError as error:
            return self._failed([f"cannot read {self._path}: {error}"])
        running = self._state.snapshot.config
        if problems := restart_required(running, config):
            return self._failed(problems)
        if self._write_xds:
            try:
                problems = await apply_to_envoy(
                    config, running, Path(config.envoy.xds_dir), self._envoy, self._ack_timeout_s
                )
            except RuntimeError as error:  # `envoy --mode validate` refused the rendering
                problems = [str(error)]
            if problems:
                return self._failed(problems)
        self._state.swap(config)
        await self._after_swap(config)
        CONFIG_RELOADS.labels("ok").inc()
        log.info("configuration reloaded", extra={"path": str(self._path)})
        return ReloadResult(True)

    def _failed(self, problems: list[str]) -> ReloadResult:
        CONFIG_RELOADS.labels("error").inc()
        log.error("configuration rejected; keeping the running one", extra={"problems": problems})
        return ReloadResult(False, problems)

    async def watch(self) -> None:
        """Reload whenever the file changes (editors and k8s ConfigMaps replace it by rename).
        Nothing ends the watch but cancellation: a failure is logged, counted, and watching resumes."""
        while True:
            try:
                async for _ in watchfiles.awatch(self._path.parent, watch_filter=self._is_config, debounce=300):
                    await self.reload()
            except Exception:
                log.exception("config watcher failed; watching again")
                CONFIG_RELOADS.labels("error").inc()
            await asyncio.sleep(1)  # never spin if the directory itself is gone

    def _is_config(self, _change: watchfiles.Change, path: str) -> bool:
        return Path(path).name in (self._path.name, "..data")  # ..data: a ConfigMap's swap
