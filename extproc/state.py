"""What a request needs from the current configuration, swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from extproc.auth.authenticator import Authenticator
from extproc.breakers import open_breakers
from extproc.config.model import GatewayConfig
from extproc.routing import Router
from extproc.spend.prices import PriceTable, table_in_force
from extproc.store import Store, open_store


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

    def swap(self, config: GatewayConfig) -> None:
        self.snapshot = Snapshot.of(config)
