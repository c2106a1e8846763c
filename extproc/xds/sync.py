"""Hand a validated config to a running Envoy, one subscription at a time, and wait until Envoy
says it applied each step.

Each write carries a fresh `version_info`; Envoy shows the version it accepted in its
`version_text` stats (measured with file-based xDS on Envoy 1.40: both subscriptions re-read on
any rename in the watched directory, so update counters alone race, while the version does not).
Writing both files at once can let Envoy read the new listeners before the new clusters and
refuse them ("unknown cluster"), so the steps are: the new clusters beside the old ones, then
the listeners, then (only if some were dropped) the clusters without the dropped ones. A refused
update raises `update_rejected` and keeps Envoy's old resources; the files are then rolled back
to the running config (listeners first) so that Envoy, its next start and the ext_proc agree.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from extproc.config.model import GatewayConfig
from extproc.xds import render
from extproc.xds.envoy_admin import EnvoyAdmin, XdsState

_counter = itertools.count(1)


def new_version() -> str:
    """Unique per write, also across restarts of this process."""
    return f"{os.getpid()}-{time.time_ns()}-{next(_counter)}"


async def apply_to_envoy(
    config: GatewayConfig, running: GatewayConfig, xds_dir: Path, envoy: EnvoyAdmin | None, timeout_s: float
) -> list[str]:
    """Validate and write `config`; with `envoy`, in steps, each acknowledged. Returns problems (empty: applied)."""
    before: XdsState | None = None
    if envoy is not None:
        try:
            before = await envoy.xds_state()
        except (aiohttp.ClientError, TimeoutError) as error:  # nothing written yet: refuse cleanly
            return [f"cannot reach Envoy's admin at {envoy.url}: {error!r}"]
    # Validation runs the Envoy binary: keep the event loop serving meanwhile.
    await asyncio.to_thread(render.validate, config)
    if envoy is None or before is None:
        await asyncio.to_thread(render.write_xds, config, xds_dir, check=False, version=new_version())
        return []
    retained: list[str] = []

    def clusters_beside_running(version: str) -> None:
        retained.extend(render.write_clusters(config, xds_dir, version, retaining=running))

    problems = await _step(envoy, "clusters", clusters_beside_running, before, timeout_s)
    if not problems:
        problems = await _step(
            envoy, "listeners", lambda v: render.write_listeners(config, xds_dir, v), before, timeout_s
        )
    if not problems and retained:
        problems = await _step(
            envoy, "clusters", lambda v: render.write_clusters(config, xds_dir, v), before, timeout_s
        )
    if problems:
        await _roll_back(envoy, running, xds_dir, timeout_s)
    return problems


async def _step(
    envoy: EnvoyAdmin, kind: str, write: Callable[[str], object], before: XdsState, timeout_s: float
) -> list[str]:
    version = new_version()
    await asyncio.to_thread(write, version)
    return await _wait_applied(envoy, kind, version, before, timeout_s)


async def _roll_back(envoy: EnvoyAdmin, running: GatewayConfig, xds_dir: Path, timeout_s: float) -> None:
    """Listeners first: the old ones route only to clusters the first step kept."""
    try:
        now = await envoy.xds_state()  # the refusal already counted: wait from here
    except (aiohttp.ClientError, TimeoutError):
        now = None
    for kind, write in (
        ("listeners", lambda version: render.write_listeners(running, xds_dir, version)),
        ("clusters", lambda version: render.write_clusters(running, xds_dir, version)),
    ):
        if now is None:
            await asyncio.to_thread(write, new_version())
        else:
            await _step(envoy, kind, write, now, timeout_s)


async def _wait_applied(envoy: EnvoyAdmin, kind: str, version: str, before: XdsState, timeout_s: float) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            state = await envoy.xds_state()
        except (aiohttp.ClientError, TimeoutError) as error:
            state, unreachable = before, repr(error)
        else:
            unreachable = ""
            refused = [k for k in state.rejected if state.rejected[k] > before.rejected[k]]
            if refused:
                reasons = await _reasons(envoy)
                return [f"Envoy rejected the new {k}: {reasons}" for k in refused]
            if state.versions[kind] == version:
                return []
        if loop.time() >= deadline:
            detail = f" (admin unreachable: {unreachable})" if unreachable else f" (it shows {state.versions[kind]})"
            return [f"Envoy did not apply {kind} version {version} within {timeout_s:g}s{detail}"]
        await asyncio.sleep(0.05)


async def _reasons(envoy: EnvoyAdmin) -> str:
    try:
        reasons = await envoy.rejection_reasons()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        reasons = []
    return "; ".join(reasons) or "no reason in /config_dump (see Envoy's log)"
