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

from extproc.auth.identity import Identity, Labels

KEY_PREFIX = "gw-"
HASH_PREFIX = "sha256:"


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """One API-key client as configured (gateway.yaml `clients:` or the keys file)."""

    id: str
    tenant: str
    key_hashes: tuple[str, ...]
    models: tuple[str, ...] = ("*",)
    labels: tuple[tuple[str, str], ...] = ()

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
