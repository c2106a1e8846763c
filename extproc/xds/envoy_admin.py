"""A small client of Envoy's admin API: is Envoy serving, which xDS version did it apply, why did it reject one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from extproc.config.model import EnvoySettings

# The two file-based xDS subscriptions; Envoy names their stats by these prefixes.
SUBSCRIPTIONS = {"clusters": "cluster_manager.cds", "listeners": "listener_manager.lds"}
_STATS_FILTER = r"^(cluster_manager\.cds|listener_manager\.lds)\.(update_rejected|version_text)$"


@dataclass(frozen=True, slots=True)
class XdsState:
    """What Envoy last applied (`version_text` shows a file's `version_info`) and how many updates it refused."""

    versions: dict[str, str]
    rejected: dict[str, int]


class EnvoyAdmin:
    """Envoy's admin on loopback TCP, or on a Unix socket (`socket`) that nothing else in the pod can reach."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 2.0, socket: str | None = None) -> None:
        self.url = "http://envoy-admin" if socket else f"http://{host}:{port}"
        self._socket = socket
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    @classmethod
    def of(cls, settings: EnvoySettings) -> EnvoyAdmin:
        return cls(settings.admin_port, socket=settings.admin_socket)

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.UnixConnector(path=self._socket) if self._socket else None
        return aiohttp.ClientSession(timeout=self._timeout, connector=connector)

    async def ready(self) -> bool:
        """Envoy's own readiness: LIVE once its listeners are initialised."""
        try:
            async with self._session() as session, session.get(f"{self.url}/ready") as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def drain(self, grace_s: float) -> None:
        """Stop accepting connections, then wait (up to `grace_s`) for the gateway's requests in flight."""
        deadline = asyncio.get_running_loop().time() + grace_s
        async with self._session() as session:
            await (await session.post(f"{self.url}/drain_listeners")).read()
            while asyncio.get_running_loop().time() < deadline:
                async with session.get(f"{self.url}/stats", params={"filter": "downstream_rq_active$"}) as response:
                    text = await response.text()
                active = sum(int(line.rpartition(" ")[2]) for line in text.splitlines() if "gateway_" in line)
                if active == 0:
                    return
                await asyncio.sleep(0.1)

    async def xds_state(self) -> XdsState:
        """Raises aiohttp.ClientError / TimeoutError when the admin does not answer."""
        text = await self._get_text("/stats", {"filter": _STATS_FILTER})
        values: dict[str, str] = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            values[name.strip()] = value.strip()
        return XdsState(
            versions={
                kind: values.get(f"{prefix}.version_text", "").strip('"') for kind, prefix in SUBSCRIPTIONS.items()
            },
            rejected={
                kind: int(values.get(f"{prefix}.update_rejected", "0") or 0) for kind, prefix in SUBSCRIPTIONS.items()
            },
        )

    async def rejection_reasons(self) -> list[str]:
        """Envoy's own words for the resources whose last update it refused (from /config_dump)."""
        async with self._session() as session, session.get(f"{self.url}/config_dump") as response:
            dump = await response.json(content_type=None)
        return sorted(set(_error_details(dump)))

    async def _get_text(self, path: str, params: dict[str, str]) -> str:
        async with self._session() as session, session.get(f"{self.url}{path}", params=params) as response:
            response.raise_for_status()
            return await response.text()


def _error_details(node: Any) -> list[str]:
    """Every `error_state.details` anywhere in a config dump (listeners and clusters keep one per resource)."""
    found = []
    if isinstance(node, dict):
        state = node.get("error_state")
        if isinstance(state, dict) and state.get("details"):
            found.append(str(state["details"]))
        for value in node.values():
            found += _error_details(value)
    elif isinstance(node, list):
        for item in node:
            found += _error_details(item)
    return found
