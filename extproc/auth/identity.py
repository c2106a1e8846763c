"""Who a request comes from: the identity later stages use for access, limits and cache scope."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

AuthMethod = Literal["none", "api_key", "jwt", "any"]  # "any": an API key or a JWT
AUTH_METHODS: tuple[AuthMethod, ...] = ("none", "api_key", "jwt", "any")


class Labels(Mapping[str, str]):
    """A read-only str -> str mapping; unlike MappingProxyType it pickles (config goes to worker processes)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = dict(items)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Labels({self._items!r})"


@dataclass(frozen=True, slots=True)
class Identity:
    client_id: str
    tenant: str
    models: tuple[str, ...] = ("*",)  # fnmatch globs of the models this client may use
    labels: Mapping[str, str] = field(default_factory=Labels)
    method: str = "none"  # how it authenticated: "api_key" | "jwt" | "none"

    def allows(self, model: str) -> bool:
        return any(fnmatchcase(model, glob) for glob in self.models)


ANONYMOUS = Identity("anonymous", "default", method="none")
