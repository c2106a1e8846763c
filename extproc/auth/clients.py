"""API-key client records: their JSON Schema (from the ClientRecord declaration) and their semantic checks.

Shared by gateway.yaml's `clients:` and the keys file, so both accept the
same shape. Messages never echo a key_hashes value: someone may have pasted
a raw key there by mistake.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extproc.auth.apikeys import ClientRecord, is_key_hash
from extproc.auth.identity import reserved_name
from extproc.declare import build, json_schema

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

CLIENT_SCHEMA: dict[str, Any] = json_schema(ClientRecord)

KEYS_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"clients": {"type": "array", "items": CLIENT_SCHEMA}},
}


def parse_clients(items: list[dict[str, Any]], where: str, problems: list[str]) -> tuple[ClientRecord, ...]:
    """Schema-valid client mappings -> records; bad hashes and duplicate ids or hashes become problems."""
    records: list[ClientRecord] = []
    ids: set[str] = set()
    hashes: dict[str, str] = {}
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if item["id"] in ids:
            problems.append(f"{at}.id: duplicate client id {item['id']!r}")
        ids.add(item["id"])
        for field_name in ("id", "tenant"):
            if field_name in item and (why := reserved_name(item[field_name])):
                problems.append(f"{at}.{field_name}: {item[field_name]!r} is reserved: {why}")
        for j, key_hash in enumerate(item["key_hashes"]):
            if not is_key_hash(key_hash):
                problems.append(f'{at}.key_hashes[{j}]: not a "sha256:<64 hex>" hash (use `extproc keys hash`)')
            elif key_hash in hashes:
                problems.append(f"{at}.key_hashes[{j}]: the same key hash is given to client {hashes[key_hash]!r}")
            else:
                hashes[key_hash] = item["id"]
        valid = tuple(h for h in item["key_hashes"] if is_key_hash(h))
        records.append(build(ClientRecord, item, tenant=item.get("tenant", "default"), key_hashes=valid))
    return tuple(records)


@functools.cache
def _keys_file_validator() -> Draft202012Validator:
    """Built on first use: a worker process that never reads a keys file never loads jsonschema."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(KEYS_FILE_SCHEMA)


class KeysFileError(Exception):
    """The keys file is unreadable or invalid; `problems` hold paths and reasons, never a value from the file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def read_keys_file(path: Path) -> tuple[ClientRecord, ...]:
    import yaml  # here: a worker process, which reads no keys file, never loads PyYAML

    try:
        raw = yaml.safe_load(path.read_bytes())
    except OSError as error:
        raise KeysFileError([f"cannot read: {error.strerror}"]) from None
    except yaml.YAMLError:
        raise KeysFileError(["not valid YAML"]) from None  # the parser's message may quote a line
    if not isinstance(raw, dict):
        raise KeysFileError(["<root>: must be a mapping with a clients: list"])
    # Only the path and the rule that failed: a message could quote a value, and values may be keys.
    problems = [
        f"{_path(error.absolute_path)}: {_safe_message(error)}" for error in _keys_file_validator().iter_errors(raw)
    ]
    if problems:
        raise KeysFileError(sorted(problems))
    records = parse_clients(raw.get("clients") or [], "clients", problems)
    if problems:
        raise KeysFileError(problems)
    return records


def _safe_message(error: ValidationError) -> str:
    if error.validator in ("required", "additionalProperties"):
        return error.message  # names fields only
    return f"does not satisfy {error.validator!r} ({error.validator_value!r})"


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"
