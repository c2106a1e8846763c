"""`extproc prices`: the table in force, the configuration's entries first, each row with where
its figures come from; one kind's, or the one entry that prices a model, as text or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.__main__ import main

CONFIG = """
providers: [{name: m, kind: mock}]
prices:
  openai:
    - {models: [gpt-4o-mini], input: 1, output: 2, source: "our contract, 2026-12"}
  mock:
    - {models: ["*"], input: 0.1, output: 0.1}
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    return str(path)


def test_the_table_in_force_lists_the_configurations_entries_first_then_the_sourced_defaults(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prices", "-c", config]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "origin",
        "kind",
        "in",
        "cached",
        "write",
        "write_1h",
        "out",
        "reasoning",
        "above",
        "models",
    ]
    assert out[1].split() == ["config", "openai", "1", "1", "1", "1", "2", "2", "-", "gpt-4o-mini"]
    assert out[2].strip() == "our contract, 2026-12"
    assert out[3].split()[:2] == ["config", "mock"] and out[4].strip() == "gateway.yaml"
    defaults = [
        i for i, line in enumerate(out) if line.startswith("default  openai") and line.endswith("gpt-4o gpt-4o-20*")
    ]
    (row,) = defaults
    assert out[row].split()[2:9] == ["2.5", "1.25", "2.5", "2.5", "10", "10", "-"]
    assert out[row + 1].strip().startswith("2026-11-20 https://") and "litellm" in out[row + 1]


def test_a_kind_and_model_print_the_one_entry_that_prices_it(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "-c", config, "--kind", "azure", "--model", "gpt-4o-mini", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["origin"], row["kind"], row["input"], row["output"]) == ("config", "openai", 1.0, 2.0)
    assert main(["prices", "-c", config, "--kind", "openai", "--model", "gpt-4o-2024-11-20", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["origin"], row["models"], row["input"]) == ("default", ["gpt-4o", "gpt-4o-20*"], 2.5)


def test_a_model_without_a_price_says_so_and_fails(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "-c", config, "--kind", "anthropic", "--model", "made-up"]) == 1
    captured = capsys.readouterr()
    assert "no price for anthropic model 'made-up'" in captured.err
    assert main(["prices", "-c", config, "--model", "gpt-4o"]) == 2
