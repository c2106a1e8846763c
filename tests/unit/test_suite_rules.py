"""Rules of the suite itself, kept by reading its source: every module that runs the real gateway
or Redis is marked `integration`, no test sleeps to wait for something to happen, and every stage
of the router pass has unit tests of its own."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

from extproc.breakers.manager import Breakers
from extproc.breakers.memory import MemoryBreakers
from extproc.pipeline import default_stages
from extproc.store.memory import MemoryStore

TESTS = Path(__file__).resolve().parents[1]
# Where the fixtures that start a gateway or a Redis server are defined.
FIXTURE_HOMES = [
    TESTS / "conftest.py",
    TESTS / "integration" / "conftest.py",
    *sorted((TESTS / "support").glob("*.py")),
]
STARTERS = {"GatewayStack", "RedisServer"}  # what starts Envoy with the ext_proc, or redis-server
WAIT_HELPERS = TESTS / "support" / "wait.py"  # the one place that may sleep: between polls


def _python_files(under: Path) -> list[Path]:
    """The suite's own Python files (not those of the clients' npm packages)."""
    found = []
    for directory, subdirectories, files in os.walk(under):
        subdirectories[:] = [d for d in subdirectories if d != "node_modules" and not d.startswith(".")]
        found += [Path(directory, name) for name in files if name.endswith(".py")]
    return sorted(found)


def _modules(under: Path) -> list[Path]:
    return [path for path in _python_files(under) if path.name.startswith("test_")]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _marked_integration(tree: ast.Module) -> bool:
    """A module-level `pytestmark = pytest.mark.integration` (alone or in a list)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            marks = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            if any(ast.unparse(mark) == "pytest.mark.integration" for mark in marks):
                return True
    return False


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _starting_fixtures() -> set[str]:
    """Fixtures (by name) whose body starts a gateway or a Redis server, directly or through another."""
    bodies: dict[str, set[str]] = {}
    for path in FIXTURE_HOMES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef) and any("fixture" in ast.unparse(d) for d in node.decorator_list):
                bodies[node.name] = _names(node) | {arg.arg for arg in node.args.args}
    starting = {name for name, used in bodies.items() if used & STARTERS}
    while grown := {name for name, used in bodies.items() if used & starting} - starting:
        starting |= grown
    return starting


def _starts_something(tree: ast.Module, fixtures: set[str]) -> bool:
    """Whether a module builds a gateway or a Redis server, or a test or fixture of it asks for one that does."""
    if _names(tree) & STARTERS:
        return True
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and {arg.arg for arg in node.args.args} & fixtures
        for node in ast.walk(tree)
    )


def test_the_fixtures_that_start_a_gateway_or_redis_are_found() -> None:
    assert {"gateway", "auth_gateway", "redis_server"} <= _starting_fixtures()


def test_every_module_in_tests_integration_is_marked_integration() -> None:
    unmarked = [path.name for path in _modules(TESTS / "integration") if not _marked_integration(_tree(path))]
    assert unmarked == [], "add `pytestmark = pytest.mark.integration` to these"


def test_every_other_module_that_starts_the_gateway_or_redis_is_marked_integration() -> None:
    fixtures = _starting_fixtures()
    unmarked = [
        str(path.relative_to(TESTS))
        for path in _modules(TESTS)
        if path.parent.name not in ("integration", "clients")  # the clients have a marker of their own
        and _starts_something(tree := _tree(path), fixtures)
        and not _marked_integration(tree)
    ]
    assert unmarked == [], "these start Envoy, the ext_proc or Redis: mark them `pytest.mark.integration`"


def _sleeps(path: Path) -> Iterator[int]:
    """Lines of the module that call a sleep (time.sleep, asyncio.sleep, or a bare `sleep`)."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Call):
            called = node.func
            name = (
                called.attr if isinstance(called, ast.Attribute) else called.id if isinstance(called, ast.Name) else ""
            )
            if name == "sleep":
                yield node.lineno


def _says_why(lines: list[str], lineno: int) -> bool:
    """The sleep's line, or the comment lines right above it, say it is not a wait."""
    index = lineno - 1
    if "# not a wait" in lines[index].lower():
        return True
    index -= 1
    while index >= 0 and lines[index].strip().startswith("#"):
        if "not a wait" in lines[index].lower():
            return True
        index -= 1
    return False


def test_tests_wait_on_a_signal_and_never_sleep_to_wait() -> None:
    """A sleep that is part of what is tested (a slow provider, the pace of a stream, time that must
    pass on a clock that cannot be faked) says so: `# not a wait: <why>`. Any other wait polls its
    signal with tests/support/wait.py."""
    unexplained = []
    for path in _python_files(TESTS):
        if path == WAIT_HELPERS:
            continue
        lines = path.read_text().splitlines()
        unexplained += [f"{path.relative_to(TESTS)}:{n}" for n in _sleeps(path) if not _says_why(lines, n)]
    assert unexplained == []


def test_the_rules_see_what_they_look_for(tmp_path: Path) -> None:
    marked = ast.parse("import pytest\npytestmark = [pytest.mark.integration, pytest.mark.slow]\n")
    assert _marked_integration(marked) and not _marked_integration(ast.parse("pytestmark = pytest.mark.slow\n"))
    starts = ast.parse("def test_it(gateway):\n    pass\n")
    assert _starts_something(starts, {"gateway"}) and not _starts_something(starts, {"redis_server"})
    module = tmp_path / "test_sleepy.py"
    module.write_text(
        "import time\nimport asyncio\n\n"
        "time.sleep(1)\n"
        "asyncio.sleep(1)  # not a wait: the provider's pace\n"
        "# Not a wait: the server's own clock must move.\n"
        "asyncio.sleep(2)\n"
    )
    lines = module.read_text().splitlines()
    assert [n for n in _sleeps(module) if not _says_why(lines, n)] == [4]


def test_every_stage_of_the_router_pass_has_unit_tests_of_its_own() -> None:
    """Each stage is also driven alone with an Exchange, in tests/unit/test_stage_<name>.py."""
    names = [stage.name for stage in default_stages(MemoryStore(1, 1), Breakers(MemoryBreakers()))]
    missing = [name for name in names if not (TESTS / "unit" / f"test_stage_{name}.py").is_file()]
    assert missing == []
