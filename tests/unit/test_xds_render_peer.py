"""xds/render_peer.py: the token Envoy presents to the ext_proc on TCP, made once and kept."""

from __future__ import annotations

from pathlib import Path

from extproc.contract import EXTPROC_TOKEN_HEADER
from extproc.xds.render_peer import ensure_token, read_token, token_file, token_filter


def test_a_token_is_made_on_first_use_kept_after_and_owner_only(tmp_path: Path) -> None:
    assert read_token(tmp_path) is None
    token = ensure_token(tmp_path)
    assert len(token) >= 40
    assert ensure_token(tmp_path) == token == read_token(tmp_path)
    assert token_file(tmp_path).stat().st_mode & 0o777 == 0o600


def test_a_garbled_token_file_reads_as_none(tmp_path: Path) -> None:
    token_file(tmp_path).write_text("resources: [{generic_secret: {}}]\n")
    assert read_token(tmp_path) is None
    token_file(tmp_path).write_text(": not yaml :\n  - [")
    assert read_token(tmp_path) is None


def test_envoy_sends_the_token_in_its_header_read_from_the_watched_sds_file(tmp_path: Path) -> None:
    rendered = token_filter(tmp_path)
    assert rendered["name"] == "envoy.filters.http.credential_injector"
    generic = rendered["typed_config"]["credential"]["typed_config"]
    assert generic["header"] == EXTPROC_TOKEN_HEADER
    source = generic["credential"]["sds_config"]["path_config_source"]
    assert source["path"] == str(token_file(tmp_path).resolve())
    assert source["watched_directory"] == {"path": str(tmp_path.resolve())}
