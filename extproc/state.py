"""What a request needs from the current configuration, swapped whole on reload."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from extproc.auth.authenticator import Authenticator
from extproc.breakers import open_breakers
from extproc.config.model import GatewayConfig
from extproc.config.tracing import TracingSettings
from extproc.routing import Router
from extproc.spend.prices import PriceTable, table_in_force
from extproc.store import Store, open_store

if TYPE_CHECKING:
    from extproc.observe.tracing import Tracing


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: GatewayConfig
    router: Router
    authenticator: Authenticator
    prices: PriceTable  # the configuration's prices over the default table

    @classmethod
    def of(cls, config: GatewayConfig) -> Snapshot:
        return cls(config, Router(config), Authenticator(config.auth, Path(".")), table_in_force(config.prices))


class GatewayState:
    """Holds the live snapshot; a request keeps the one it started with. The store outlives
    reloads (its settings are restart-only)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.snapshot = Snapshot.of(config)
        self.store: Store = open_store(config)
        self.breakers = open_breakers(config, self.store)
        self.tracing: Tracing | None = open_tracing(config.tracing)

    def swap(self, config: GatewayConfig) -> None:
        old = self.snapshot.config.tracing
        self.snapshot = Snapshot.of(config)
        if config.tracing != old:  # a new collector, ratio or headers: a new exporter; the old one drains aside
            retired, self.tracing = self.tracing, open_tracing(config.tracing)
            if retired is not None:
                threading.Thread(target=retired.shutdown, name="tracing-retire", daemon=True).start()

    def close_tracing(self) -> None:
        """Export the spans still queued (blocking: call it off the event loop, at the process's end)."""
        if self.tracing is not None:
            self.tracing.shutdown()


def open_tracing(settings: TracingSettings | None) -> Tracing | None:
    """The exporter of this process's spans; None (and no export thread) when tracing is off."""
    if settings is None:
        return None
    from extproc.observe.tracing import Tracing

    endpoint = settings.traces_url if settings.protocol == "http" else settings.otlp_endpoint
    return Tracing.to_collector(endpoint, settings.protocol, settings.sample_ratio, settings.headers)
