"""`.run/<pid>` left by an instance that died is removed; a live process's is kept, whoever's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from extproc.app.lifecycle import remove_stale_run_files


def test_run_files_of_a_dead_process_go_and_a_live_ones_stay(tmp_path: Path) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead, live, other = tmp_path / str(ended.pid), tmp_path / str(os.getpid()), tmp_path / "notes"
    for directory in (dead / "xds", live / "xds", other):
        directory.mkdir(parents=True)
    remove_stale_run_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    remove_stale_run_files(tmp_path / "absent")  # nothing to clean: no error
