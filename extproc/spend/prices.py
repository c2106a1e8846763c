"""Model prices in USD and the cost of one request from the provider's own usage.

The default table (`default_prices.yaml`, with the date and source of each figure) is merged with
the configuration's `prices`: a mapping of provider kind to entries of the same shape, searched
before the defaults, so they override a default model or add new ones. Within one table a kind's
exact names are tried before its globs, and globs in table order.

Usage follows `extproc.formats.canonical.Usage`: `input_tokens` counts every prompt token (cache
reads and writes included), `output_tokens` every output token (reasoning included); the cache and
reasoning counts are parts of those. OpenAI, Anthropic, Gemini, Bedrock and Vertex bill reasoning
as output, which is what a price without its own `reasoning` figure does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

PER_TOKEN = 1e-6  # prices are per million tokens
# Kinds that serve another kind's models at its prices; a kind of their own in the table wins.
# (Azure OpenAI is an openai provider with `azure:`; priced as OpenAI unless `azure` is priced apart.)
KIND_ALIASES = {"openai-responses": "openai", "azure": "openai"}
_RATE_FIELDS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")
_ENTRY_FIELDS = frozenset({*_RATE_FIELDS, "models", "above", "as_of", "source", "via"})
_ABOVE_FIELDS = frozenset({*_RATE_FIELDS, "prompt_tokens"})
_MAX_REMEMBERED = 4096  # model names may come from clients: the lookup memo stays bounded


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens of each kind; a figure the table leaves out is filled in as it is billed."""

    input: float
    output: float
    cached_input: float
    cache_write: float
    cache_write_1h: float
    reasoning: float


@dataclass(frozen=True, slots=True)
class Price:
    models: tuple[str, ...]
    rates: Rates
    above_prompt_tokens: int | None = None
    above: Rates | None = None  # the whole request's prices when its prompt exceeds above_prompt_tokens
    as_of: str = ""
    source: str = ""
    via: str = ""

    def rates_for(self, prompt_tokens: int) -> Rates:
        if self.above is not None and self.above_prompt_tokens is not None and prompt_tokens > self.above_prompt_tokens:
            return self.above
        return self.rates


class BilledUsage(Protocol):
    """What a provider reported (`extproc.formats.canonical.Usage` has this shape)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...
    @property
    def cache_creation_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...
    @property
    def cache_write_1h_tokens(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Cost:
    usd: float
    priced: bool  # False: the table has no price for the model, and usd is 0


UNPRICED = Cost(0.0, False)


def usage_cost(price: Price, usage: BilledUsage) -> float:
    """USD for one answer. Cache writes kept for an hour (`cache_write_1h_tokens`, Anthropic's
    `ephemeral_1h_input_tokens`) are priced as such; the other writes as 5-minute ones.
    Counts are clamped so that inconsistent reports never give a negative cost."""
    # Conditional expressions, not max/min calls: this runs once per request (about half the time).
    prompt = usage.input_tokens if usage.input_tokens > 0 else 0
    rates = price.rates_for(prompt)
    read = usage.cached_tokens if usage.cached_tokens > 0 else 0
    written = usage.cache_creation_tokens if usage.cache_creation_tokens > 0 else 0
    written_1h = usage.cache_write_1h_tokens if usage.cache_write_1h_tokens > 0 else 0
    if written_1h > written:
        written_1h = written
    fresh = prompt - read - written
    if fresh < 0:
        fresh = 0
    output = usage.output_tokens if usage.output_tokens > 0 else 0
    reasoning = usage.reasoning_tokens if usage.reasoning_tokens > 0 else 0
    if reasoning > output:
        reasoning = output
    return PER_TOKEN * (
        fresh * rates.input
        + read * rates.cached_input
        + (written - written_1h) * rates.cache_write
        + written_1h * rates.cache_write_1h
        + (output - reasoning) * rates.output
        + reasoning * rates.reasoning
    )


def reservation_cost(price: Price, prompt_tokens: int, max_tokens: int) -> float:
    """The most a request is held to before its answer: its prompt estimate at the input price plus
    `max_tokens` at the output price (at the long-prompt prices when the estimate is past them)."""
    rates = price.rates_for(prompt_tokens)
    return PER_TOKEN * (max(prompt_tokens, 0) * rates.input + max(max_tokens, 0) * max(rates.output, rates.reasoning))


@dataclass(slots=True)
class _KindPrices:
    exact: dict[str, Price]
    globs: list[tuple[Callable[[str], object], Price]]

    def find(self, model: str) -> Price | None:
        found = self.exact.get(model)
        if found is not None:
            return found
        for matches, price in self.globs:
            if matches(model):
                return price
        return None


def _index(prices: Sequence[Price]) -> _KindPrices:
    exact: dict[str, Price] = {}
    globs: list[tuple[Callable[[str], object], Price]] = []
    for price in prices:
        for name in price.models:
            if any(char in name for char in "*?["):
                globs.append((re.compile(fnmatch.translate(name)).match, price))
            else:
                exact.setdefault(name, price)  # the first entry naming a model is its price
    return _KindPrices(exact, globs)


class PriceTable:
    """Prices by provider kind and model: the configuration's entries, then the defaults."""

    def __init__(self, *layers: tuple[str, Mapping[str, Sequence[Price]]]) -> None:
        """`layers`: (origin, {kind: entries}), the first searched first; origin names where they came from."""
        self._layers = layers
        self._kinds: dict[str, list[_KindPrices]] = {}
        for _, table in layers:
            for kind, prices in table.items():
                self._kinds.setdefault(kind, []).append(_index(prices))
        self._memo: dict[tuple[str, str], Price | None] = {}

    def lookup(self, kind: str, model: str) -> Price | None:
        key = (kind, model)
        if key in self._memo:
            return self._memo[key]
        found = self._find(kind, model)
        if found is None and kind in KIND_ALIASES:
            found = self._find(KIND_ALIASES[kind], model)
        if len(self._memo) >= _MAX_REMEMBERED:
            self._memo.clear()
        self._memo[key] = found
        return found

    def _find(self, kind: str, model: str) -> Price | None:
        for layer in self._kinds.get(kind, ()):
            found = layer.find(model)
            if found is not None:
                return found
        return None

    def cost(self, kind: str, model: str, usage: BilledUsage) -> Cost:
        price = self.lookup(kind, model)
        return UNPRICED if price is None else Cost(usage_cost(price, usage), True)

    def reservation(self, kind: str, model: str, prompt_tokens: int, max_tokens: int) -> Cost:
        price = self.lookup(kind, model)
        return UNPRICED if price is None else Cost(reservation_cost(price, prompt_tokens, max_tokens), True)

    def entries(self) -> Iterator[tuple[str, str, Price]]:
        """(origin, kind, price) in search order, for printing the table in force."""
        for origin, table in self._layers:
            for kind, prices in table.items():
                for price in prices:
                    yield origin, kind, price


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: a price is a number of USD per million tokens, 0 or more")
    return float(value)


def _rates(entry: Mapping[str, Any], where: str) -> Rates:
    """A figure left out is billed as the provider bills it then: a cache read or write at the input
    price, a 1-hour write as a 5-minute one, reasoning as output."""
    if "input" not in entry or "output" not in entry:
        raise ValueError(f"{where}: needs both an input and an output price")

    def given(name: str, default: float) -> float:
        value = entry.get(name)
        return default if value is None else _number(value, f"{where}.{name}")

    input_ = given("input", 0.0)
    output = given("output", 0.0)
    cache_write = given("cache_write", input_)
    return Rates(
        input=input_,
        output=output,
        cached_input=given("cached_input", input_),
        cache_write=cache_write,
        cache_write_1h=given("cache_write_1h", cache_write),
        reasoning=given("reasoning", output),
    )


def parse_price(entry: Mapping[str, Any], where: str) -> Price:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: an entry is a mapping with models and prices")
    unknown = sorted(set(entry) - _ENTRY_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    models = entry.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"{where}.models: a list of model names or globs")
    rates = _rates(entry, where)
    above = entry.get("above")
    threshold: int | None = None
    above_rates: Rates | None = None
    if above is not None:
        if not isinstance(above, Mapping) or set(above) - _ABOVE_FIELDS:
            raise ValueError(f"{where}.above: prompt_tokens and prices only")
        threshold = above.get("prompt_tokens")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise ValueError(f"{where}.above.prompt_tokens: a number of tokens")
        above_rates = _rates(above, f"{where}.above")
    text = {name: str(entry.get(name, "")) for name in ("as_of", "source", "via")}
    return Price(tuple(models), rates, threshold, above_rates, **text)


def parse_prices(table: Mapping[str, Any], where: str = "prices") -> dict[str, tuple[Price, ...]]:
    """{kind: [entry, ...]} as gateway.yaml and default_prices.yaml write it; ValueError names the bad entry."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: a mapping of provider kind to a list of prices")
    parsed: dict[str, tuple[Price, ...]] = {}
    for kind, entries in table.items():
        if not isinstance(entries, list):
            raise ValueError(f"{where}.{kind}: a list of prices")
        parsed[str(kind)] = tuple(parse_price(entry, f"{where}.{kind}[{i}]") for i, entry in enumerate(entries))
    return parsed


_DEFAULTS: dict[str, dict[str, tuple[Price, ...]]] = {}  # "table": the default table once read or handed over


def default_prices() -> dict[str, tuple[Price, ...]]:
    if (table := _DEFAULTS.get("table")) is None:
        import yaml  # here: a worker process is handed the table (hand_over_defaults) and never loads PyYAML

        text = resources.files("extproc.spend").joinpath("default_prices.yaml").read_text()
        table = _DEFAULTS["table"] = parse_prices(yaml.safe_load(text)["prices"], "default_prices.yaml")
    return table


def hand_over_defaults(table: dict[str, tuple[Price, ...]]) -> None:
    """The default table as another process read it (a worker's, from the main process)."""
    _DEFAULTS["table"] = table


def price_table(overrides: Mapping[str, Any] | None = None) -> PriceTable:
    """The table in force: the configuration's `prices` (searched first), then the defaults."""
    return table_in_force(parse_prices(overrides) if overrides else {})


def table_in_force(configured: Mapping[str, Sequence[Price]]) -> PriceTable:
    """The configuration's parsed prices (searched first), then the defaults."""
    layers: list[tuple[str, Mapping[str, Sequence[Price]]]] = []
    if configured:
        layers.append(("config", configured))
    layers.append(("default", default_prices()))
    return PriceTable(*layers)
