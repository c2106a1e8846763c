"""Config problems quote no value: they are logged, returned by POST /reload and shown by /status."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.config.load import ConfigError, load_text

SECRET = "sk-proj-Leaked0123456789"


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(text, env or {}, Path("."))
    return caught.value.problems


def test_an_environment_override_of_the_wrong_type_is_named_without_its_value() -> None:
    found = problems("providers: [{name: m, kind: mock}]", {"GATEWAY_ADMIN_PORT": SECRET})
    assert found == ["extproc.admin_port: the value is not of type 'integer'"]


@pytest.mark.parametrize(
    "text",
    [
        f"providers: [{{name: m, kind: mock, models: {SECRET}}}]",  # type
        f"providers: [{{name: m, kind: {SECRET}}}]",  # enum
        f"log_level: {SECRET}\nproviders: [{{name: m, kind: mock}}]",  # enum
        f"providers: [{{name: m, kind: mock}}]\nroutes: [{{model: '*', provider: m, retry: {SECRET}}}]",
    ],
)
def test_schema_problems_never_quote_the_value(text: str) -> None:
    found = problems(text)
    assert found and not [p for p in found if SECRET in p or SECRET[:12] in p]


def test_a_yaml_error_says_where_without_the_snippet_of_the_file() -> None:
    (found,) = problems(f"providers: [{{name: m, kind: mock}}\nkey: {SECRET}: [\n")
    assert found.startswith("<file>: not valid YAML at line 2, column ")
    assert SECRET not in found


def test_a_key_pasted_as_an_env_var_name_is_not_printed_but_a_real_name_is() -> None:
    gemini = "providers: [{{name: g, kind: gemini, base_url: 'https://x.test', api_key_env: {}}}]"
    assert problems(gemini.format("AIzaSyLeaked0123456789abcdef")) == [
        "providers[0].api_key_env: the environment variable named there is not set "
        "(the name is not shown: it does not look like one)"
    ]
    assert problems(gemini.format("GEMINI_API_KEY")) == [
        "providers[0].api_key_env: environment variable GEMINI_API_KEY is not set"
    ]
