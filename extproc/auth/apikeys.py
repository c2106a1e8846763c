"""API keys: making them, hashing them, and finding the client a key belongs to.

Only hashes are stored. Keys are 256-bit random values, so a single SHA-256
is the right hash: there is nothing for a slow, salted password hash to
protect against (no dictionary to try), and lookups stay cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

from extproc.auth.identity import Identity, Labels
from extproc.declare import NonEmpty, Schema, option

KEY_PREFIX = "gw-"
HASH_PREFIX = "sha256:"


def _pairs(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """One API-key client as configured (gateway.yaml `clients:` or the keys file); each field the
    declaration of its option (extproc.declare)."""

    id: Annotated[NonEmpty, Schema(maxLength=200)] = option(
        description="the client's unique id: in logs, limits, the cache scope and route matches (not "
        "`anonymous`, nor starting with `jwt:`: those name callers of other auth methods)",
        examples=["search-team"],
    )
    tenant: Annotated[NonEmpty, Schema(maxLength=200)] = option(
        documented="default",
        required=False,
        description="the client's tenant: limits and the cache can be kept per tenant (not `anonymous`, "
        "nor starting with `jwt:`)",
    )
    key_hashes: tuple[str, ...] = option(
        minItems=1,
        description="the hash of each key, sha256:<64 hex> (several while rotating); `extproc keys hash`",
        examples=[["sha256:f260dec37754594998f4ab622a2fcca583168ff2cfe956b13e2e03ff8a31d33b"]],
    )
    models: tuple[NonEmpty, ...] = option(("*",), description="model globs this client may use")
    labels: tuple[tuple[str, str], ...] = option(
        (),
        schema={"type": "object", "additionalProperties": {"type": "string"}},
        documented={},
        convert=_pairs,
        description="free-form labels attached to the client's identity, written in each of its access-log "
        "lines (`labels`), e.g. to attribute usage to a team",
        examples=[{"team": "search"}],
    )  # sorted (name, value) pairs

    def identity(self) -> Identity:
        return Identity(self.id, self.tenant, self.models, Labels(self.labels), method="api_key")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def is_key_hash(text: str) -> bool:
    digest = text.removeprefix(HASH_PREFIX)
    return text.startswith(HASH_PREFIX) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


class DuplicateKeyError(ValueError):
    """Two client records share a key hash (the message names the clients, never a key)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes = field(repr=False)
    identity: Identity


class ApiKeyStore:
    """Key hash -> identity. The dict finds the candidate by hash; compare_digest confirms it in constant time."""

    def __init__(self, clients: Iterable[ClientRecord] = ()) -> None:
        self._entries: dict[str, _Entry] = {}
        owners: dict[str, str] = {}
        for client in clients:
            identity = client.identity()
            for key_hash in client.key_hashes:
                if key_hash in owners:
                    raise DuplicateKeyError(f"client {client.id!r} reuses a key hash of client {owners[key_hash]!r}")
                owners[key_hash] = client.id
                self._entries[key_hash] = _Entry(bytes.fromhex(key_hash.removeprefix(HASH_PREFIX)), identity)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ApiKeyStore({len(self._entries)} keys)"

    def lookup(self, key: str) -> Identity | None:
        digest = hashlib.sha256(key.encode()).digest()
        entry = self._entries.get(HASH_PREFIX + digest.hex())
        # The hash lookup leaks at most timing about a digest, never about the key; the digest
        # comparison is still constant time so no stored value is compared byte by byte.
        if entry is None or not hmac.compare_digest(entry.digest, digest):
            return None
        return entry.identity
