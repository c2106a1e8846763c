"""Who a request comes from: the identity later stages use for access, limits and cache scope.

Identities from different methods never share a name, so never a cache scope
or a limit bucket: an API-key client is named as configured; a JWT's client
and tenant claims are prefixed `jwt:` (a token's `sub` equal to a client's id
is another caller); a caller on an `auth: none` route is client `anonymous`
in tenant `anonymous`. API-key ids and tenants may not take those names
(`reserved_name`), so no configuration can make two of them meet.
"""

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


JWT_PREFIX = "jwt:"
ANONYMOUS_NAME = "anonymous"
ANONYMOUS = Identity(ANONYMOUS_NAME, ANONYMOUS_NAME, method="none")


def jwt_name(claim: str) -> str:
    """A client or tenant named by a token, in the JWT namespace."""
    return JWT_PREFIX + claim


def reserved_name(name: str) -> str | None:
    """Why an API-key client id or tenant may not be `name` (it belongs to another method), or None."""
    if name.startswith(JWT_PREFIX):
        return f"names starting with {JWT_PREFIX!r} are those of JWT clients"
    if name == ANONYMOUS_NAME:
        return f"{ANONYMOUS_NAME!r} is the name of callers without a credential (auth: none)"
    return None
