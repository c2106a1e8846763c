"""Reload gateway.yaml while traffic flows: validate everything, then swap.

On any error the running configuration stays, the problems are logged and
counted. A good file is rendered into Envoy's xDS directory (atomically,
checked by `envoy --mode validate`) when this process manages that
directory, then swapped into the ext_proc's state; requests in flight keep
the snapshot they started with. Listener, ext_proc and Envoy admin settings
of the new file take effect at the next restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from extproc.config import render
from extproc.config.load import ConfigError, load_file
from extproc.config.model import GatewayConfig
from extproc.observe.metrics import CONFIG_RELOADS
from extproc.state import GatewayState

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReloadResult:
    ok: bool
    problems: list[str] = field(default_factory=list)


class Reloader:
    def __init__(
        self,
        path: Path,
        state: GatewayState,
        write_xds: bool,
        after_swap: Callable[[GatewayConfig], None] = lambda config: None,
    ) -> None:
        self._path = path
        self._state = state
        self._write_xds = write_xds
        self._after_swap = after_swap
        self._lock = asyncio.Lock()  # one reload at a time

    async def reload(self) -> ReloadResult:
        async with self._lock:
            try:
                config = load_file(self._path)
                if self._write_xds:
                    # Validation runs the Envoy binary: keep the event loop serving meanwhile.
                    await asyncio.to_thread(render.write_xds, config, Path(config.envoy.xds_dir))
            except ConfigError as error:
                return self._failed(error.problems)
            except (OSError, RuntimeError) as error:
                return self._failed([str(error)])
            self._state.swap(config)
            self._after_swap(config)
            CONFIG_RELOADS.labels("ok").inc()
            log.info("configuration reloaded", extra={"path": str(self._path)})
            return ReloadResult(True)

    def _failed(self, problems: list[str]) -> ReloadResult:
        CONFIG_RELOADS.labels("error").inc()
        log.error("configuration rejected; keeping the running one", extra={"problems": problems})
        return ReloadResult(False, problems)

    async def watch(self) -> None:
        """Reload whenever the file changes (editors and k8s ConfigMaps replace it by rename)."""
        async for _ in watchfiles.awatch(self._path.parent, watch_filter=self._is_config, debounce=300):
            await self.reload()

    def _is_config(self, _change: watchfiles.Change, path: str) -> bool:
        return Path(path).name in (self._path.name, "..data")  # ..data: a ConfigMap's swap
