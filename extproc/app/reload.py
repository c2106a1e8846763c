"""Reload gateway.yaml while traffic flows: validate everything, then swap.

On any error the running configuration stays, the problems are logged and counted. A
good file is refused whole if it changes a setting only a restart can apply
(app/restart.py). Otherwise, when this process manages Envoy's xDS directory, it is
rendered there (checked by `envoy --mode validate`) and, when Envoy's admin is known,
the swap waits until Envoy acknowledged it (xds/sync.py): the ext_proc never routes
to a cluster Envoy does not have. Then the ext_proc's state is swapped and the workers
follow; requests in flight keep the snapshot they started with.

The watcher counts as ready once it is registered (its first timeout); a file written before
that moment has no event of its own, so it is compared with the running config then.
`status()` reports the running version, the last reload and the last refusal for /status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from extproc.app.restart import restart_required
from extproc.config.load import ConfigError, load_file, text_hash
from extproc.config.model import GatewayConfig
from extproc.observe.metrics import CONFIG_RELOADS
from extproc.state import GatewayState
from extproc.xds.envoy_admin import EnvoyAdmin
from extproc.xds.sync import apply_to_envoy

log = logging.getLogger(__name__)

ENVOY_ACK_TIMEOUT_S = 15.0
WATCH_TICK_MS = 500  # the watcher's wake-up without events: its first one means it is registered


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
        self.watching = asyncio.Event()  # set once file changes are seen
        self._loaded_at = time.time()
        self._last_reload: dict[str, object] | None = None
        self._last_error: dict[str, object] | None = None

    def status(self) -> dict[str, object]:
        """The running config's version and when it was loaded, the last reload, the last refusal."""
        return {
            "path": str(self._path),
            "version": self._state.snapshot.config.text_hash,
            "loaded_at": _timestamp(self._loaded_at),
            "last_reload": self._last_reload,
            "last_error": self._last_error,
        }

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
        self._loaded_at = time.time()
        self._last_reload = {"ok": True, "at": _timestamp(self._loaded_at), "version": config.text_hash}
        CONFIG_RELOADS.labels("ok").inc()
        log.info("configuration reloaded", extra={"path": str(self._path)})
        return ReloadResult(True)

    def _failed(self, problems: list[str]) -> ReloadResult:
        self._last_reload = {"ok": False, "at": _timestamp(time.time()), "problems": problems}
        self._last_error = {**self._last_reload, "path": str(self._path)}
        CONFIG_RELOADS.labels("error").inc()
        log.error("configuration rejected; keeping the running one", extra={"problems": problems})
        return ReloadResult(False, problems)

    async def watch(self) -> None:
        """Reload whenever the file, or a file it reads a secret from, changes (editors and k8s
        ConfigMaps and Secrets replace them by rename). Nothing ends the watch but cancellation:
        a failure is logged, counted, and watching resumes."""
        while True:
            try:
                await self._watch_once()
            except Exception:
                log.exception("config watcher failed; watching again")
                CONFIG_RELOADS.labels("error").inc()
                await asyncio.sleep(1)  # never spin if a directory itself is gone

    async def _watch_once(self) -> None:
        """Until the set of watched directories changes (a reload named other secret files)."""
        secrets = frozenset(self._state.snapshot.config.secret_files)
        directories = {self._path.parent, *(Path(name).parent for name in secrets)}

        def relevant(_change: watchfiles.Change, path: str) -> bool:
            # ..data: the kubelet's swap of a ConfigMap's or a Secret's files
            return path in secrets or Path(path).name in (self._path.name, "..data")

        registered = False
        async for changes in watchfiles.awatch(
            *directories,
            watch_filter=relevant,
            debounce=300,
            rust_timeout=WATCH_TICK_MS,
            yield_on_timeout=True,
            recursive=False,  # a secret's directory may be large; its own entries are enough
        ):
            if changes:
                await self.reload()
            elif not registered:
                registered = True
                self.watching.set()
                if self._changed_since_loaded():
                    await self.reload()
            if frozenset(self._state.snapshot.config.secret_files) != secrets:
                return

    def _changed_since_loaded(self) -> bool:
        try:
            return text_hash(self._path.read_text()) != self._state.snapshot.config.text_hash
        except OSError:
            return False  # gone: the next event (or its return) says more


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
