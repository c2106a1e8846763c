"""Prices and request costs: the default table's shape and sources, matching by provider kind and
model (exact names before globs, the configuration's entries before the defaults), the cost of one
answer from the provider's usage, and the worst-case reservation. Expected figures are worked out
by hand from the providers' published prices (USD per million tokens), shown beside each."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
import yaml

from extproc.formats.canonical import Usage
from extproc.spend.prices import Cost, default_prices, parse_prices, price_table
from extproc.spend.schema import PRICES_SCHEMA

TABLE = price_table()


def usd(kind: str, model: str, **usage: int) -> float:
    cost = TABLE.cost(kind, model, Usage(**usage))
    assert cost.priced, (kind, model)
    return cost.usd


def test_the_default_table_covers_each_provider_kind_with_a_dated_source_for_every_entry() -> None:
    from importlib import resources

    raw = yaml.safe_load(resources.files("extproc.spend").joinpath("default_prices.yaml").read_text())
    jsonschema.validate(raw["prices"], PRICES_SCHEMA)
    assert set(raw["prices"]) == {"openai", "anthropic", "gemini", "bedrock", "vertex"}
    for kind, entries in default_prices().items():
        for price in entries:
            assert re.fullmatch(r"20\d\d-\d\d-\d\d", price.as_of), (kind, price.models)
            assert price.source.startswith("https://"), (kind, price.models)
            assert price.via, (kind, price.models)


def test_an_openai_answer_bills_cache_reads_at_the_cached_price_and_reasoning_as_output() -> None:
    # gpt-4o: input 2.50, cached input 1.25, output 10. 1000 prompt tokens of which 200 read from
    # the cache; 500 output tokens of which 100 reasoning:
    # 800 * 2.50 + 200 * 1.25 + 500 * 10 = 2000 + 250 + 5000 = 7250 per million
    assert usd("openai", "gpt-4o", input_tokens=1000, cached_tokens=200, output_tokens=500, reasoning_tokens=100) == (
        pytest.approx(0.00725)
    )


def test_an_anthropic_answer_bills_five_minute_and_one_hour_cache_writes_apart() -> None:
    # claude-sonnet-4-5: input 3, cache read 0.30, 5-minute write 3.75, 1-hour write 6, output 15.
    # 10000 prompt tokens: 6000 read, 2000 written (500 of them for an hour), 2000 fresh; 1000 output:
    # 2000 * 3 + 6000 * 0.30 + 1500 * 3.75 + 500 * 6 + 1000 * 15 = 6000 + 1800 + 5625 + 3000 + 15000 = 31425
    cost = usd(
        "anthropic",
        "claude-sonnet-4-5-20250929",
        input_tokens=10000,
        cached_tokens=6000,
        cache_creation_tokens=2000,
        cache_write_1h_tokens=500,
        output_tokens=1000,
    )
    assert cost == pytest.approx(0.031425)


def test_an_older_claude_is_priced_from_the_anthropic_page() -> None:
    # Claude Sonnet 4 on Anthropic's pricing page: input 3, 5m write 3.75, 1h write 6, hit 0.30, output 15.
    # 1M fresh + 1M read + 1M 5m-written + 1M 1h-written + 1M output = 3 + 0.30 + 3.75 + 6 + 15 = 28.05
    million = 1_000_000
    cost = usd(
        "anthropic",
        "claude-sonnet-4-20250514",
        input_tokens=4 * million,
        cached_tokens=million,
        cache_creation_tokens=2 * million,
        cache_write_1h_tokens=million,
        output_tokens=million,
    )
    assert cost == pytest.approx(28.05)


def test_a_long_gemini_prompt_is_billed_at_the_long_prompt_prices_for_the_whole_request() -> None:
    # gemini-2.5-pro: up to 200k prompt tokens input 1.25 / output 10; past that 2.50 / 15.
    # 200000 * 1.25 + 10000 * 10 = 250000 + 100000 = 0.35 USD (at the limit: still the short prices)
    assert usd("gemini", "gemini-2.5-pro", input_tokens=200_000, output_tokens=10_000) == pytest.approx(0.35)
    # 250000 * 2.50 + 10000 * 15 = 625000 + 150000 = 0.775 USD
    assert usd("gemini", "gemini-2.5-pro", input_tokens=250_000, output_tokens=10_000) == pytest.approx(0.775)


def test_an_exact_name_wins_over_a_glob_that_also_matches() -> None:
    # gpt-4o-2024-05-13 was 5 / 15, where the gpt-4o-20* snapshots are 2.50 / 10.
    assert usd("openai", "gpt-4o-2024-05-13", input_tokens=1_000_000) == pytest.approx(5.0)
    assert usd("openai", "gpt-4o-2024-08-06", input_tokens=1_000_000) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("kind", "model", "input_price"),
    [
        ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", 3.0),
        ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", 3.0),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 3.3),  # cross-region profile: +10%
        ("bedrock", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", 3.0),  # older Claude: no regional premium
        ("bedrock", "amazon.nova-pro-v1:0", 0.8),
        ("vertex", "claude-opus-4-5@20251101", 5.0),
        ("vertex", "gemini-2.5-flash", 0.3),
        ("gemini", "gemini-2.5-flash", 0.3),
        ("anthropic", "claude-haiku-4-5", 1.0),
        ("openai-responses", "gpt-5", 1.25),  # the Responses kind serves OpenAI's models at OpenAI's prices
    ],
)
def test_each_provider_kind_names_models_its_own_way(kind: str, model: str, input_price: float) -> None:
    # 100k prompt tokens: under every long-prompt threshold
    assert usd(kind, model, input_tokens=100_000) == pytest.approx(input_price / 10)


def test_a_model_without_a_price_costs_nothing_and_says_so() -> None:
    assert TABLE.cost("openai", "gpt-unknown", Usage(input_tokens=1000, output_tokens=10)) == Cost(0.0, False)
    assert TABLE.cost("mock", "mock-1", Usage(input_tokens=1000)) == Cost(0.0, False)
    assert TABLE.reservation("anthropic", "claude-unknown", 100, 100) == Cost(0.0, False)
    # The same model under another kind is not priced: a kind's names are its own.
    assert not TABLE.cost("anthropic", "gpt-4o", Usage(input_tokens=1)).priced


def test_the_configuration_overrides_a_default_even_an_exact_one_and_adds_models() -> None:
    table = price_table(
        {
            "openai": [{"models": ["gpt-4o*"], "input": 1, "output": 2}],
            "openai-compatible": [{"models": ["llama-3-70b"], "input": 0.5, "output": 0.5}],
        }
    )
    # 1M input * 1 + 1M output * 2 = 3 USD, though the defaults have gpt-4o by its exact name
    assert table.cost("openai", "gpt-4o", Usage(input_tokens=10**6, output_tokens=10**6)).usd == pytest.approx(3.0)
    assert table.cost("openai", "gpt-5", Usage(input_tokens=10**6)).usd == pytest.approx(1.25)  # still a default
    assert table.cost("openai-compatible", "llama-3-70b", Usage(input_tokens=2 * 10**6)).usd == pytest.approx(1.0)
    origins = {(origin, kind) for origin, kind, _ in table.entries()}
    assert ("config", "openai-compatible") in origins and ("default", "openai") in origins


def test_a_kind_of_its_own_wins_over_the_kind_it_would_borrow_prices_from() -> None:
    table = price_table({"openai-responses": [{"models": ["gpt-5"], "input": 7, "output": 7}]})
    assert table.cost("openai-responses", "gpt-5", Usage(input_tokens=10**6)).usd == pytest.approx(7.0)
    assert table.cost("openai-responses", "gpt-4o", Usage(input_tokens=10**6)).usd == pytest.approx(2.5)


def test_a_separate_reasoning_price_bills_the_reasoning_part_of_the_output() -> None:
    table = price_table({"openai-compatible": [{"models": ["thinker"], "input": 1, "output": 2, "reasoning": 8}]})
    # 100 output tokens of which 40 reasoning: 60 * 2 + 40 * 8 = 440 per million
    cost = table.cost("openai-compatible", "thinker", Usage(output_tokens=100, reasoning_tokens=40))
    assert cost.usd == pytest.approx(0.00044)


def test_inconsistent_counts_never_make_a_negative_cost() -> None:
    # More cache reads than prompt tokens, more reasoning than output, negative counts.
    cost = usd("openai", "gpt-4o", input_tokens=10, cached_tokens=50, output_tokens=-5, reasoning_tokens=9)
    assert cost == pytest.approx(50 * 1.25e-6)


def test_the_reservation_is_the_prompt_at_the_input_price_plus_max_tokens_at_the_output_price() -> None:
    # gpt-4o: 1000 * 2.50 + 4096 * 10 = 2500 + 40960 = 43460 per million
    assert TABLE.reservation("openai", "gpt-4o", 1000, 4096) == Cost(pytest.approx(0.04346), True)
    # gemini-2.5-pro past 200k prompt tokens: 300000 * 2.50 + 1000 * 15 = 750000 + 15000 per million
    assert TABLE.reservation("gemini", "gemini-2.5-pro", 300_000, 1000).usd == pytest.approx(0.765)
    # A reservation is never below what the same counts cost once answered.
    usage = Usage(input_tokens=1000, cached_tokens=800, output_tokens=4096, reasoning_tokens=2000)
    assert TABLE.cost("openai", "gpt-4o", usage).usd <= TABLE.reservation("openai", "gpt-4o", 1000, 4096).usd


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"openai": [{"models": ["m"], "input": -1, "output": 1}]}, r"prices\.openai\[0\]\.input"),
        ({"openai": [{"models": ["m"], "input": 1}]}, r"prices\.openai\[0\]: needs both"),
        ({"openai": [{"models": ["m"], "input": 1, "output": 1, "inptu": 2}]}, "unknown field.*inptu"),
        ({"openai": [{"models": [], "input": 1, "output": 1}]}, r"\.models"),
        ({"openai": [{"models": ["m"], "input": "1", "output": 1}]}, r"\.input"),
        ({"openai": {"models": ["m"]}}, r"prices\.openai: a list"),
        ({"openai": [{"models": ["m"], "input": 1, "output": 1, "above": {"input": 2, "output": 2}}]}, "prompt_tokens"),
    ],
)
def test_a_bad_entry_is_refused_with_its_place(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_prices(table)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(table, PRICES_SCHEMA)
