"""The layer contracts of extproc/ ([tool.importlinter] in pyproject.toml) hold, and they refuse what
they are there to refuse: an import that runs up a layer, a cycle, a package placed in no layer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "pyproject.toml"
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the `extproc` package found in `root`, as `make lint` runs it."""
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo", str(CONTRACTS)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of extproc/ to break on purpose."""
    shutil.copytree(REPO / "extproc", tmp_path / "extproc", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def add_line(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_extproc_keeps_every_layer_contract() -> None:
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_config_importing_the_app_layer_breaks_the_layers_and_makes_a_cycle(copy: Path) -> None:
    add_line(copy / "extproc" / "config" / "model.py", "from extproc.app import reload  # noqa: E402")
    result = lint(copy)
    assert result.returncode == 1
    assert "extproc.config is not allowed to import extproc.app" in result.stdout
    assert "No cycles are allowed in extproc." in result.stdout


def test_the_control_plane_importing_the_request_path_breaks_the_layers(copy: Path) -> None:
    add_line(copy / "extproc" / "xds" / "render_pool.py", "import extproc.pipeline.exchange  # noqa: E402")
    result = lint(copy)
    assert result.returncode == 1
    assert "extproc.xds is not allowed to import extproc.pipeline" in result.stdout


def test_a_cycle_between_two_modules_of_one_package_is_refused(copy: Path) -> None:
    add_line(copy / "extproc" / "xds" / "files.py", "from extproc.xds import render  # noqa: E402")
    result = lint(copy)
    assert result.returncode == 1
    assert "No cycles are allowed in extproc.xds." in result.stdout


def test_a_top_level_package_in_no_layer_is_refused(copy: Path) -> None:
    (copy / "extproc" / "unplaced.py").write_text('"""In no layer of the contract."""\n')
    result = lint(copy)
    assert result.returncode == 1
    assert "The following modules are not listed as layers:\n\n- extproc.unplaced" in result.stdout


def test_a_format_reporting_metrics_is_refused(copy: Path) -> None:
    add_line(copy / "extproc" / "formats" / "sse.py", "import extproc.observe.metrics  # noqa: E402")
    result = lint(copy)
    assert result.returncode == 1
    assert "extproc.formats is not allowed to import extproc.observe" in result.stdout
