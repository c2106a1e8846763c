"""`extproc check` says how long loading the file took, beside its one line on stdout."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import run_cli


def test_check_prints_the_load_time_on_stderr_and_keeps_stdout_to_its_verdict(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("providers:\n  - {name: m, kind: mock}\n")
    result = run_cli("check", str(good))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{good}: ok\n"
    assert re.fullmatch(rf"{re.escape(str(good))}: loaded in \d+\.\d ms\n", result.stderr)


def test_check_of_an_invalid_file_prints_no_load_time(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: []\n")
    result = run_cli("check", str(bad))
    assert result.returncode == 2
    assert "loaded in" not in result.stderr
