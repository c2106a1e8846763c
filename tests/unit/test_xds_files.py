"""xds/files.py: files Envoy reads while it runs are replaced whole; secrets are owner-only and
rewritten only when they change (each rename makes Envoy read them again)."""

from __future__ import annotations

from pathlib import Path

import yaml

from extproc.xds.files import write_atomically, write_sds_file


def test_a_file_is_replaced_whole_readable_by_another_user_and_leaves_no_temporary_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "made" / "lds.yaml"
    write_atomically(target, "old")
    first = target.stat().st_ino
    write_atomically(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_ino != first  # a new file renamed over the old one, never written in place
    assert target.stat().st_mode & 0o777 == 0o644
    assert [path.name for path in target.parent.iterdir()] == ["lds.yaml"]


def test_a_secret_is_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    secret = tmp_path / "secrets" / "key.yaml"
    write_sds_file(secret, {"name": "key", "generic_secret": {"secret": {"inline_string": "sk-1"}}})
    assert secret.stat().st_mode & 0o777 == 0o600
    assert secret.parent.stat().st_mode & 0o777 == 0o700
    assert yaml.safe_load(secret.read_text())["resources"][0]["name"] == "key"


def test_an_unchanged_secret_is_not_rewritten_and_a_changed_one_is(tmp_path: Path) -> None:
    secret = tmp_path / "key.yaml"
    resource = {"name": "key", "generic_secret": {"secret": {"inline_string": "sk-1"}}}
    write_sds_file(secret, resource)
    first = secret.stat().st_ino
    write_sds_file(secret, resource)
    assert secret.stat().st_ino == first
    write_sds_file(secret, {**resource, "generic_secret": {"secret": {"inline_string": "sk-2"}}})
    assert secret.stat().st_ino != first
    assert "sk-2" in secret.read_text()
