"""Hand a validated config to Envoy and wait until Envoy says it applied it.

Each write carries a fresh `version_info` in cds.yaml and lds.yaml; Envoy shows the version it
accepted in its `version_text` stats (measured with file-based xDS on Envoy 1.40: both
subscriptions re-read on any rename in the watched directory, so update counters alone race,
while the version does not). A refused update raises `update_rejected` and keeps Envoy's old
resources; the files are then rolled back to the running config so that Envoy (and its next
start) and the ext_proc agree.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path

import aiohttp

from extproc.config import render
from extproc.config.model import GatewayConfig
from extproc.envoy_admin import EnvoyAdmin, XdsState

_counter = itertools.count(1)


def new_version() -> str:
    """Unique per write, also across restarts of this process."""
    return f"{os.getpid()}-{time.time_ns()}-{next(_counter)}"


async def apply_to_envoy(
    config: GatewayConfig, running: GatewayConfig, xds_dir: Path, envoy: EnvoyAdmin | None, timeout_s: float
) -> list[str]:
    """Validate and write `config`; with `envoy`, wait for its acknowledgement. Returns problems (empty: applied)."""
    before: XdsState | None = None
    if envoy is not None:
        try:
            before = await envoy.xds_state()
        except (aiohttp.ClientError, TimeoutError) as error:  # nothing written yet: refuse cleanly
            return [f"cannot reach Envoy's admin at {envoy.url}: {error!r}"]
    version = new_version()
    # Validation runs the Envoy binary: keep the event loop serving meanwhile.
    await asyncio.to_thread(render.write_xds, config, xds_dir, version=version)
    if envoy is None or before is None:
        return []
    problems = await _wait_applied(envoy, version, before, timeout_s)
    if problems:
        await asyncio.to_thread(lambda: render.write_xds(running, xds_dir, check=False, version=new_version()))
    return problems


async def _wait_applied(envoy: EnvoyAdmin, version: str, before: XdsState, timeout_s: float) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            state = await envoy.xds_state()
        except (aiohttp.ClientError, TimeoutError) as error:
            state, unreachable = before, repr(error)
        else:
            unreachable = ""
            refused = [kind for kind in state.rejected if state.rejected[kind] > before.rejected[kind]]
            if refused:
                reasons = await _reasons(envoy)
                return [f"Envoy rejected the new {kind}: {reasons}" for kind in refused]
            if all(applied == version for applied in state.versions.values()):
                return []
        if loop.time() >= deadline:
            detail = f" (admin unreachable: {unreachable})" if unreachable else f" (it shows {state.versions})"
            return [f"Envoy did not apply xDS version {version} within {timeout_s:g}s{detail}"]
        await asyncio.sleep(0.05)


async def _reasons(envoy: EnvoyAdmin) -> str:
    try:
        reasons = await envoy.rejection_reasons()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        reasons = []
    return "; ".join(reasons) or "no reason in /config_dump (see Envoy's log)"
