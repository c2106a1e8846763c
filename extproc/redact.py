"""Config problems that never quote a secret: they are logged, returned by POST /reload and shown
by /status, so a value the file or the environment holds must not travel with them (an API key
pasted into the wrong field, a GATEWAY_* override, a line of YAML that failed to parse)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # their errors come from their callers: a worker, which loads no file, never imports them
    import yaml
    from jsonschema import ValidationError

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def schema_message(error: ValidationError) -> str:
    """jsonschema's message with the offending value replaced (numbers and booleans stay: no secret
    is one, and `0 is less than the minimum of 1` says more with it)."""
    value = error.instance
    if value is None or isinstance(value, bool | int | float):
        return error.message
    message = error.message.replace(repr(value), "the value")
    if isinstance(value, str) and len(value) > 3 and value in message:
        message = message.replace(value, "...")
    return message


def yaml_problem(error: yaml.YAMLError) -> str:
    """Where the file stopped parsing and why, without the snippet of the file PyYAML quotes."""
    import yaml  # already loaded: the error is its own

    if not isinstance(error, yaml.MarkedYAMLError):
        return "not valid YAML"
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = "; ".join(part for part in (error.context, error.problem) if part)
    return f"not valid YAML{where}: {what or 'syntax error'}"


def env_var_unset(where: str, name: str) -> str:
    """The problem of an unset `*_env` variable. Its name is shown only when it looks like one: a
    key pasted in place of the name would otherwise be printed."""
    if _ENV_NAME.fullmatch(name):
        return f"{where}: environment variable {name} is not set"
    return (
        f"{where}: the environment variable named there is not set (the name is not shown: it does not look like one)"
    )
