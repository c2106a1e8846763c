"""API-key clients for gateways under test: a fresh key per client, and the config that knows them."""

from __future__ import annotations

from typing import Any

from extproc.auth.apikeys import hash_key, new_key


def keyed_clients(tenants: dict[str, str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """({client: key}, the `clients:` section) for clients named with their tenants."""
    keys = {name: new_key() for name in tenants}
    section = [{"id": name, "tenant": tenant, "key_hashes": [hash_key(keys[name])]} for name, tenant in tenants.items()]
    return keys, section
