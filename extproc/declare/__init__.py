"""Options declared once, on the typed objects the code reads: their JSON Schema, documented
defaults and the building of those objects from a validated document all come from the fields."""

from extproc.declare.build import build, lookup
from extproc.declare.fields import MISSING, Group, Schema, derived, inline, option, section
from extproc.declare.json_schema import documented_default, json_schema, plain, type_schema
from extproc.declare.types import declared_fields
from extproc.declare.values import HTTP_URL, NonEmpty, NonNegative, Port, Positive, Seconds

__all__ = [
    "HTTP_URL",
    "MISSING",
    "Group",
    "NonEmpty",
    "NonNegative",
    "Port",
    "Positive",
    "Schema",
    "Seconds",
    "build",
    "declared_fields",
    "derived",
    "documented_default",
    "inline",
    "json_schema",
    "lookup",
    "option",
    "plain",
    "section",
    "type_schema",
]
