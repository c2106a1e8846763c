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


def test_only_the_prices_are_read_so_no_provider_key_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    keyed = "providers: [{name: o, kind: openai, base_url: 'https://x/v1', api_key_env: UNSET_KEY_VAR_FOR_TEST}]\n"
    path.write_text(keyed + "prices: {openai: [{models: [gpt-4o], input: 2, output: 8}]}\n")
    assert main(["prices", "-c", str(path), "--kind", "openai", "--model", "gpt-4o", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["origin"], row["input"]) == ("config", 2.0)


def test_a_bad_price_is_named_by_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("prices: {openai: [{models: [x], input: 1, output: 1}, {models: [y], input: -1, output: 1}]}\n")
    assert main(["prices", "-c", str(path)]) == 2
    assert "prices.openai[1].input: a price is a number of USD per million tokens" in capsys.readouterr().err
