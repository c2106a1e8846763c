"""Client side: a Responses request's `tools` and `tool_choice`.

Function tools become canonical tools. A `namespace` tool's functions are flattened into
`<namespace>__<name>` (providers have no namespaces); the request keeps the map, so an answer's
calls go back to the client as namespace + name. Hosted tools (web_search, file_search,
code_interpreter, mcp, custom, ...) run only at a provider that speaks the Responses API: they are
ApiFeatures, passed through to it and dropped or refused elsewhere.
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import ApiFeature, Tool, ToolChoice, feature_name
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import MAX_MESSAGES, check_count
from extproc.formats.json_fields import QUOTED, as_array, as_object, nonempty_str, opt_bool, opt_object, opt_str
from extproc.formats.responses.common import flat_tool_name


def parse_tools(
    raw: Any, namespaces: dict[str, tuple[str, str]], features: list[ApiFeature], schemas: list[tuple[str, Any]]
) -> list[Tool]:
    """`schemas` gathers (param, parameters) of each function, for the schema bound."""
    check_count(as_array(raw, "tools"), MAX_MESSAGES, "tools")
    tools: list[Tool] = []
    for i, tool in enumerate(raw):
        param = f"tools[{i}]"
        kind = _kind(tool, param)
        if kind == "function":
            tools.append(_function(tool, param, schemas))
        elif kind == "namespace":
            tools += _namespace(tool, param, namespaces, features, schemas)
        else:
            features.append(ApiFeature(feature_name("tools.", kind), param, value=tool))
    return tools


def _kind(tool: Any, param: str) -> str:
    kind = as_object(tool, param).get("type", "function")
    if not isinstance(kind, str):
        raise QUOTED.must(f"{param}.type", "a string")
    return kind


def _function(tool: dict[str, Any], param: str, schemas: list[tuple[str, Any]]) -> Tool:
    name = nonempty_str(tool, "name", param)
    parameters = opt_object(tool, "parameters", param)
    if parameters is not None:
        schemas.append((f"{param}.parameters", parameters))
    return Tool(name, opt_str(tool, "description", param), parameters, opt_bool(tool, "strict", param))


def _namespace(
    tool: dict[str, Any],
    param: str,
    namespaces: dict[str, tuple[str, str]],
    features: list[ApiFeature],
    schemas: list[tuple[str, Any]],
) -> list[Tool]:
    namespace = nonempty_str(tool, "name", param)
    tools: list[Tool] = []
    for j, member in enumerate(as_array(tool.get("tools"), f"{param}.tools")):
        mparam = f"{param}.tools[{j}]"
        kind = _kind(member, mparam)
        if kind != "function":
            features.append(ApiFeature(feature_name("tools.", kind), mparam, value=member))
            continue
        function = _function(member, mparam, schemas)
        flat = flat_tool_name(namespace, function.name)
        namespaces[flat] = (namespace, function.name)
        function.name = flat
        tools.append(function)
    return tools


def parse_tool_choice(raw: Any, features: list[ApiFeature]) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise invalid("'tool_choice' must be 'auto', 'none', 'required' or an object with a type", "tool_choice")
    kind = raw["type"]
    if kind == "function":
        name = nonempty_str(raw, "name", "tool_choice")
        namespace = raw.get("namespace")
        if isinstance(namespace, str) and namespace:
            name = flat_tool_name(namespace, name)
        return ToolChoice("function", name)
    if kind == "allowed_tools":  # a subset of the tools: the canonical model has the mode only
        features.append(ApiFeature("tool_choice.allowed_tools", "tool_choice", value=raw))
        mode = raw.get("mode")
        return ToolChoice("required" if mode == "required" else "auto")
    features.append(ApiFeature(feature_name("tool_choice.", kind), "tool_choice", value=raw))  # a hosted tool
    return None
