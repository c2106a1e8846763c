"""The price table in force as text (`extproc prices`) or JSON: one row per entry, in the order
prices are searched (the configuration's first), each with where it comes from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from extproc.spend.prices import KIND_ALIASES, Price, PriceTable, Rates

_COLUMNS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")
_HEADER = ("origin", "kind", "in", "cached", "write", "write_1h", "out", "reasoning", "above", "models")


def rows(table: PriceTable, kind: str | None = None, model: str | None = None) -> Iterator[dict[str, Any]]:
    """Each entry as a mapping; `kind` keeps one kind's; `model` (with `kind`) only the entry that prices it."""
    wanted: Price | None = table.lookup(kind, model) if kind and model else None
    for origin, entry_kind, price in table.entries():
        if kind and entry_kind not in (kind, KIND_ALIASES.get(kind)):
            continue
        if model and price is not wanted:
            continue
        row: dict[str, Any] = {"origin": origin, "kind": entry_kind, "models": list(price.models)}
        row.update(_rates(price.rates))
        if price.above is not None:
            row["above"] = {"prompt_tokens": price.above_prompt_tokens, **_rates(price.above)}
        row.update(as_of=price.as_of, source=price.source, via=price.via)
        yield row


def _rates(rates: Rates) -> dict[str, float]:
    return {name: getattr(rates, name) for name in _COLUMNS}


def text(table: PriceTable, kind: str | None = None, model: str | None = None) -> str:
    """USD per million tokens, a line per entry (its models last), then where its figures come from."""
    lines: list[tuple[tuple[str, ...], str]] = [(_HEADER, "")]
    for row in rows(table, kind, model):
        above = row.get("above")
        cells = (
            row["origin"],
            row["kind"],
            *(_usd(row[name]) for name in _COLUMNS),
            f">{above['prompt_tokens']}: {_usd(above['input'])}/{_usd(above['output'])}" if above else "-",
            " ".join(row["models"]),
        )
        where = " ".join(
            part for part in (row["as_of"], row["source"], f"({row['via']})" if row["via"] else "") if part
        )
        lines.append((cells, where or ("gateway.yaml" if row["origin"] == "config" else "")))
    widths = [max(len(cells[i]) for cells, _ in lines) for i in range(len(_HEADER) - 1)]
    out: list[str] = []
    for cells, where in lines:
        out.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)) + "  " + cells[-1])
        if where:
            out.append("    " + where)
    return "\n".join(out) + "\n"


def _usd(value: float) -> str:
    return f"{value:g}"
