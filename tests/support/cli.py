"""The `extproc` command line run as a subprocess, as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, stdin: str = "", env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`extproc <args>` from the repository's root; `env` replaces the environment when given."""
    return subprocess.run(
        [sys.executable, "-m", "extproc", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=None if env is None else dict(env),
        timeout=timeout,
    )
