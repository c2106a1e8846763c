"""Markdown references generated from code, so the docs cannot drift from it.

- `config_reference()`: docs/config-reference.md, every option of gateway.yaml from
  the JSON Schema (`extproc.config.schema.GATEWAY_SCHEMA`, generated from the declarations
  of the typed config): its path, type, default, allowed values, description and an example.
  Printed by `extproc schema --markdown`.
- `error_table()`: the table of docs/errors.md, from `extproc.errors.ERROR_TABLE`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from extproc.config.schema import GATEWAY_SCHEMA
from extproc.errors import ERROR_TABLE

REGENERATE = ".venv/bin/extproc schema --markdown > docs/config-reference.md"


@dataclass(frozen=True, slots=True)
class Option:
    """One key of gateway.yaml: `path` like `providers[].timeout_ms` (`[]`: each item of a list)."""

    path: str
    schema: dict[str, Any]
    required: bool

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1].removesuffix("[]")

    @property
    def section(self) -> str:
        """The top-level key this option belongs to."""
        return self.path.split(".", 1)[0].removesuffix("[]")

    @property
    def leaf(self) -> bool:
        """A value the operator writes (not a mapping of further options, nor a list of them)."""
        return _members(self.schema) is None


def _members(schema: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(path suffix, object schema) when the option holds further options: an object, or a list of objects."""
    if "properties" in schema:
        return "", schema
    items = schema.get("items")
    if schema.get("type") == "array" and isinstance(items, dict) and "properties" in items:
        return "[]", items
    return None


def options(schema: dict[str, Any] = GATEWAY_SCHEMA, prefix: str = "") -> Iterator[Option]:
    """Every option in schema order, each followed by the options it holds."""
    required = set(schema.get("required", ()))
    for name, sub in schema["properties"].items():
        path = f"{prefix}.{name}" if prefix else name
        yield Option(path, sub, name in required)
        members = _members(sub)
        if members is not None:
            suffix, inner = members
            yield from options(inner, path + suffix)


def type_of(schema: dict[str, Any]) -> str:
    """A short, human type: `integer`, `list of strings`, `string or list of strings`."""
    kind = schema.get("type")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}s"
    if kind == "object":
        values = schema.get("additionalProperties")
        if "properties" not in schema and isinstance(values, dict):
            return f"mapping of string to {type_of(values)}"
        return "mapping"
    if isinstance(kind, str):
        return kind
    if "enum" in schema:
        kinds = dict.fromkeys(_json_type(value) for value in schema["enum"])
        return " or ".join(kinds)
    if "oneOf" in schema:
        return " or ".join(dict.fromkeys(type_of(alternative) for alternative in schema["oneOf"]))
    return ""


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def allowed(schema: dict[str, Any]) -> str:
    """The schema's constraints in words ('' when anything of the type goes)."""
    words: list[str] = []
    items = schema.get("items") if schema.get("type") == "array" else None
    enum = schema.get("enum") or (items or {}).get("enum")
    if enum:
        words.append("one of " + ", ".join(f"`{_yaml(value)}`" for value in enum))
    low, high = schema.get("minimum"), schema.get("maximum")
    above = schema.get("exclusiveMinimum")
    if low is not None and high is not None:
        words.append(f"{low} to {high}")
    elif low is not None:
        words.append(f"at least {low}")
    elif above is not None:
        words.append(f"greater than {above}" + (f", at most {high}" if high is not None else ""))
    elif high is not None:
        words.append(f"at most {high}")
    if "pattern" in schema:
        words.append(f"matches `{schema['pattern']}`")
    if schema.get("minLength") == 1 and "maxLength" not in schema:
        words.append("not empty")
    if "maxLength" in schema:
        words.append(f"at most {schema['maxLength']} characters")
    if schema.get("minItems"):
        words.append(f"at least {schema['minItems']} item" + ("s" if schema["minItems"] > 1 else ""))
    if schema.get("uniqueItems"):
        words.append("no duplicates")
    if "oneOf" in schema and "type" not in schema:
        words += [word for alternative in schema["oneOf"] if (word := allowed(alternative))]
    return "; ".join(words)


def example_of(option: Option) -> str | None:
    """`key: value` as it is written in gateway.yaml, from the schema's examples, its default or enum."""
    schema = option.schema
    if schema.get("examples"):
        value = schema["examples"][0]
    elif "default" in schema:
        value = schema["default"]
    elif schema.get("enum"):
        value = schema["enum"][0]
    else:
        return None
    return f"{option.name}: {_yaml(value)}"


def _yaml(value: Any) -> str:
    """One line of YAML (flow style), as an operator would write the value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _presence(option: Option) -> str | None:
    """Its `Required` or `Default` line (None for a section that is simply absent unless given)."""
    if option.required:
        return "- **Required:** yes"
    if "default" in option.schema:
        return f"- **Default:** `{_yaml(option.schema['default'])}`"
    return "- **Default:** not set" if option.leaf else None


def _anchor(path: str) -> str:
    """GitHub's anchor for a heading made of the path in backticks."""
    return "".join(ch for ch in path.lower() if ch.isalnum() or ch in "-_ ").replace(" ", "-")


def _block(option: Option, level: str) -> list[str]:
    schema = option.schema
    lines = [f"{level} `{option.path}`", ""]
    if schema.get("description"):
        lines += [_sentence(schema["description"]), ""]
    if notes := _item_notes(schema):
        lines += [" ".join(notes), ""]
    lines.append(f"- **Type:** {type_of(schema)}")
    if (presence := _presence(option)) is not None:
        lines.append(presence)
    if words := allowed(schema):
        lines.append(f"- **Allowed:** {words}")
    example = example_of(option) if option.leaf or "examples" in schema else None
    if example is not None:
        lines.append(f"- **Example:** `{example}`")
    return [*lines, ""]


def _item_notes(schema: dict[str, Any]) -> list[str]:
    """What the schema says about each item of a list of mappings: its description, and which
    keys must be given together (`oneOf` / `anyOf` of `required`)."""
    members = _members(schema)
    if members is None:
        return []
    item = members[1]
    notes = [_sentence(item["description"])] if item is not schema and item.get("description") else []
    for word, keyword in (("exactly one", "oneOf"), ("at least one", "anyOf")):
        alternatives = item.get(keyword) or []
        if alternatives and all(set(alternative) == {"required"} for alternative in alternatives):
            names = [name for alternative in alternatives for name in alternative["required"]]
            notes.append(f"Give {word} of " + ", ".join(f"`{name}`" for name in names) + ".")
    return notes


def _sentence(text: str) -> str:
    """A description as Markdown prose: capitalised, ended, and `<`, `>`, `*` shown as written
    (outside `code` spans, where Markdown would read them as HTML or emphasis)."""
    text = text.strip()
    first = text.split(" ", 1)[0]
    if first.replace("-", "").isalpha() and first.islower():  # never `gRPC`, `ext_proc`, `max_tokens`, `true:`
        text = text[0].upper() + text[1:]
    if not text.endswith((".", ":")):
        text += "."
    pieces = text.split("`")
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(pieces)


_INTRO = f"""\
# Configuration reference (`gateway.yaml`)

<!-- Generated from the option declarations (extproc/config/*model.py, traffic.py, extproc/auth/); do not edit. Regenerate: {REGENERATE} -->

Every option of `gateway.yaml`, generated from the JSON Schema the gateway
validates the file with (`extproc schema` prints it for editors). A path
like `providers[].timeout_ms` names the key `timeout_ms` of each item of
the list `providers`. **Not set** means the option has no value unless
given; its description says what happens then.

Check a file with `extproc check gateway.yaml` (add `--envoy` to also check
the rendered Envoy configuration). Secrets are never written in the file:
give the name of an environment variable (`*_env`) or of a file (`*_file`).
Relative file paths are resolved against the directory of `gateway.yaml`.
Worked examples are in [`examples/`](../examples/).
"""


def config_reference(schema: dict[str, Any] = GATEWAY_SCHEMA) -> str:
    """docs/config-reference.md."""
    every = list(options(schema))
    sections = [option for option in every if "." not in option.path]
    lines = [_INTRO, "## Sections", ""]
    lines += [f"- [`{option.path}`](#{_anchor(option.path)})" for option in sections]
    lines.append("")
    for option in every:
        lines += _block(option, "##" if option in sections else "###")
    return "\n".join(lines).rstrip("\n") + "\n"


def error_table() -> str:
    """The error kinds with their status and their type in each client API (extproc/errors.py)."""
    lines = [
        "| kind | status | OpenAI `type` | Anthropic `type` | Gemini `status` |",
        "|---|---|---|---|---|",
    ]
    for kind, (status, openai, anthropic, gemini) in ERROR_TABLE.items():
        lines.append(f"| `{kind}` | {status} | `{openai}` | `{anthropic}` | `{gemini}` |")
    return "\n".join(lines) + "\n"
