"""The client's Cache-Control request directives, as far as the response cache follows them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheControl:
    no_store: bool = False  # neither read nor write
    no_cache: bool = False  # do not read; store the fresh answer (a refresh)
    max_age_s: float | None = None  # accept only entries at most this old


NONE = CacheControl()


def parse(header: str) -> CacheControl:
    if not header:
        return NONE
    no_store = no_cache = False
    max_age = None
    for directive in header.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name == "no-store":
            no_store = True
        elif name == "no-cache":
            no_cache = True
        elif name == "max-age" and value.strip().strip('"').isdigit():
            max_age = float(value.strip().strip('"'))
    return CacheControl(no_store, no_cache or max_age == 0, max_age)
