"""API keys: generation, hashing, the constant-time store, and the reloaded keys file."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

import extproc.auth.apikeys as apikeys
from extproc.auth.apikeys import ApiKeyStore, ClientRecord, DuplicateKeyError, hash_key, new_key
from extproc.auth.keys_file import KeysFile
from extproc.observe.metrics import KEYS_FILE_RELOADS


def test_new_keys_are_prefixed_random_and_long() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(key.startswith("gw-") and len(key) >= 40 for key in keys)


def test_hash_key_is_sha256_hex_with_prefix() -> None:
    assert hash_key("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def record(client_id: str, *keys: str, models: tuple[str, ...] = ("*",)) -> ClientRecord:
    return ClientRecord(client_id, "acme", tuple(hash_key(k) for k in keys), models, (("team", "search"),))


def test_store_finds_the_client_of_each_of_its_keys() -> None:
    store = ApiKeyStore([record("search", "gw-old", "gw-new", models=("gpt-*",)), record("ads", "gw-ads")])
    for key in ("gw-old", "gw-new"):
        identity = store.lookup(key)
        assert identity is not None
        assert (identity.client_id, identity.tenant, identity.method) == ("search", "acme", "api_key")
        assert identity.labels["team"] == "search"
        assert identity.allows("gpt-4o") and not identity.allows("claude-3")
    assert store.lookup("gw-ads").client_id == "ads"  # type: ignore[union-attr]
    assert store.lookup("gw-unknown") is None


def test_store_confirms_a_match_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = apikeys.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(apikeys.hmac, "compare_digest", spy)
    store = ApiKeyStore([record("search", "gw-key")])
    assert store.lookup("gw-key") is not None
    assert calls == [(hashlib.sha256(b"gw-key").digest(),) * 2]


def test_duplicate_hashes_across_clients_are_refused_without_the_hash() -> None:
    with pytest.raises(DuplicateKeyError) as raised:
        ApiKeyStore([record("a", "gw-same"), record("b", "gw-same")])
    assert "'a'" in str(raised.value) and "'b'" in str(raised.value)
    assert hash_key("gw-same") not in str(raised.value)


def test_store_repr_shows_no_hashes() -> None:
    store = ApiKeyStore([record("a", "gw-k")])
    assert hash_key("gw-k")[7:] not in repr(store)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_clients(path: Path, text: str) -> None:
    # Write beside and rename, as editors and ConfigMap updates do: a new inode each time.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def clients_yaml(client_id: str, key: str) -> str:
    return f'clients:\n  - {{id: {client_id}, tenant: acme, key_hashes: ["{hash_key(key)}"], labels: {{team: x}}}}\n'


def counter(result: str) -> float:
    return KEYS_FILE_RELOADS.labels(result)._value.get()


def test_keys_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path, clock = tmp_path / "clients.yaml", Clock()
    write_clients(path, clients_yaml("first", "gw-first"))
    keys = KeysFile(path, clock)
    assert keys.current().lookup("gw-first").client_id == "first"  # type: ignore[union-attr]
    write_clients(path, clients_yaml("second", "gw-second"))
    assert keys.current().lookup("gw-second") is None  # looked at once per second at most
    clock.now += 1.5
    store = keys.current()
    assert store.lookup("gw-second").client_id == "second"  # type: ignore[union-attr]
    assert store.lookup("gw-first") is None


def test_a_bad_keys_file_keeps_the_previous_store_logs_once_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "clients.yaml", Clock()
    write_clients(path, clients_yaml("first", "gw-first"))
    keys = KeysFile(path, clock)
    errors_before = counter("error")
    raw_key = "gw-pasted-raw-key-by-mistake"
    write_clients(path, f'clients:\n  - {{id: oops, key_hashes: ["{raw_key}"]}}\n')
    with caplog.at_level(logging.ERROR, logger="extproc.auth.keys_file"):
        clock.now += 1.5
        assert keys.current().lookup("gw-first") is not None
        clock.now += 1.5
        assert keys.current().lookup("gw-first") is not None
    assert counter("error") == errors_before + 1
    assert len(caplog.records) == 1
    logged = caplog.records[0].getMessage() + repr(caplog.records[0].__dict__)
    assert raw_key not in logged


@pytest.mark.parametrize(
    "text",
    [
        "clients: [unclosed",
        "clients:\n  - {id: a, key_hashes: [123]}\n",
        "clients:\n  - {id: a, key_hashes: ['sha256:" + "0" * 64 + "'], colour: red}\n",
        "just a string\n",
    ],
)
def test_invalid_keys_files_are_rejected_and_keep_the_old_clients(tmp_path: Path, text: str) -> None:
    path, clock = tmp_path / "clients.yaml", Clock()
    write_clients(path, clients_yaml("first", "gw-first"))
    keys = KeysFile(path, clock)
    write_clients(path, text)
    clock.now += 2
    assert keys.current().lookup("gw-first") is not None


def test_keys_file_with_a_duplicate_hash_is_rejected(tmp_path: Path) -> None:
    path, clock = tmp_path / "clients.yaml", Clock()
    write_clients(path, clients_yaml("first", "gw-first"))
    keys = KeysFile(path, clock)
    h = hash_key("gw-dup")
    write_clients(path, f'clients:\n  - {{id: a, key_hashes: ["{h}"]}}\n  - {{id: b, key_hashes: ["{h}"]}}\n')
    clock.now += 2
    assert keys.current().lookup("gw-dup") is None
    assert keys.current().lookup("gw-first") is not None
