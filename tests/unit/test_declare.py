"""Options declared once (extproc.declare): one field gives the JSON Schema, the documented default
and the typed object built from a document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import pytest

from extproc.declare import Group, Positive, Schema, build, derived, inline, json_schema, option, section


@dataclass(frozen=True, slots=True)
class Inner:
    size: Positive = option(3, description="how many")


@section(groups={"retry": Group("retries", required=("attempts",))})
@dataclass(frozen=True, slots=True)
class Knobs:
    retry_attempts: int | None = option(None, key="retry.attempts", description="tries")
    budget: float = option(1.5, description="seconds")


@section("a thing", oneOf=[{"required": ["name"]}, {"required": ["alias"]}])
@dataclass(frozen=True, slots=True, kw_only=True)
class Thing:
    name: Annotated[str, Schema(maxLength=5)] = option("", unset=True, description="its name", examples=["ab"])
    alias: str | None = option(None, description="another name")
    size: Literal["s", "m"] = option("m", description="its size")
    tags: tuple[Annotated[str, Schema(minLength=1)], ...] = option(("x",), description="tags")
    inner: Inner = option(Inner())
    items: tuple[Inner, ...] = option((), unset=True, description="more")
    knobs: Knobs = inline(Knobs)
    labels: tuple[tuple[str, str], ...] = option(
        (),
        schema={"type": "object", "additionalProperties": {"type": "string"}},
        documented={},
        convert=lambda given: tuple(sorted(given.items())),
        description="labels",
    )
    must: int = option(description="required: no default")
    secret: str = derived("", repr=False)


def test_each_field_is_one_property_with_its_type_keywords_description_and_default() -> None:
    schema = json_schema(Thing)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["description"] == "a thing"
    assert schema["oneOf"] == [{"required": ["name"]}, {"required": ["alias"]}]
    props = schema["properties"]
    assert props["name"] == {"type": "string", "maxLength": 5, "description": "its name", "examples": ["ab"]}
    assert props["alias"] == {"type": "string", "description": "another name"}  # None: not set, no default
    assert props["size"] == {"enum": ["s", "m"], "default": "m", "description": "its size"}
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "default": ["x"],
        "description": "tags",
    }
    assert props["inner"]["properties"]["size"] == {
        "type": "integer",
        "minimum": 1,
        "default": 3,
        "description": "how many",
    }
    assert "default" not in props["inner"]  # a mapping shows its options' defaults, not its own
    assert props["items"]["items"]["properties"]["size"]["default"] == 3
    assert props["labels"]["default"] == {}
    assert schema["required"] == ["must"]
    assert "secret" not in props and "knobs" not in props  # derived: not an option; inline: its keys are ours


def test_a_group_key_and_an_inline_class_place_options_in_the_parents_mapping() -> None:
    props = json_schema(Thing)["properties"]
    assert props["retry"] == {
        "type": "object",
        "additionalProperties": False,
        "description": "retries",
        "required": ["attempts"],
        "properties": {"attempts": {"type": "integer", "description": "tries"}},
    }
    assert props["budget"] == {"type": "number", "default": 1.5, "description": "seconds"}
    assert list(props).index("retry") < list(props).index("labels")  # in field order


def test_build_reads_each_option_or_keeps_its_default() -> None:
    thing = build(
        Thing,
        {"must": 1, "tags": ["a", "b"], "items": [{"size": 4}, {}], "retry": {"attempts": 2}, "budget": 2},
        secret="s3",
    )
    assert thing.tags == ("a", "b") and thing.items == (Inner(4), Inner(3))
    assert thing.knobs == Knobs(retry_attempts=2, budget=2.0) and isinstance(thing.knobs.budget, float)
    assert thing.inner == Inner() and thing.size == "m" and thing.secret == "s3"
    assert build(Thing, {"must": 1, "labels": {"b": "2", "a": "1"}}).labels == (("a", "1"), ("b", "2"))


def test_a_field_that_is_not_an_option_cannot_be_read_from_the_document() -> None:
    thing = build(Thing, {"must": 1, "secret": "from the file"})
    assert thing.secret == ""


def test_a_type_without_a_schema_is_refused_when_the_schema_is_made() -> None:
    @dataclass(frozen=True)
    class Odd:
        value: complex = option(1j)

    with pytest.raises(TypeError, match="no JSON Schema"):
        json_schema(Odd)
