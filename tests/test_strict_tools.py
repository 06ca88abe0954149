"""`sane schema --tools openai --strict`: definitions OpenAI's strict mode accepts, and
calls made against them (nulls, key/value pairs) work as the plain ones do."""

from __future__ import annotations

from typing import Any

import pytest

from sane import tools
from sane.handlers import strict_arguments

# An oracle independent of sane/tools.py: OpenAI's documented subset of JSON Schema for
# strict mode, as its Structured Outputs guide lays it out ("Supported schemas",
# https://platform.openai.com/docs/guides/structured-outputs#supported-schemas; Azure
# OpenAI's structured-outputs page states it supports the same subset): the types,
# the keywords each type may carry, closed objects with every property required, a
# root that is an object (never anyOf), and the documented size limits.
TYPES = {"string", "number", "boolean", "integer", "object", "array", "null"}
ANY_TYPE = {"type", "description", "enum", "const", "anyOf", "$ref", "$defs"}
BY_TYPE = {
    "string": {"pattern", "format"},
    "number": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "integer": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
}
FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
MAX_PROPERTIES, MAX_NESTING, MAX_ENUM_VALUES = 100, 5, 500


def _check(node: Any, where: str, depth: int = 1) -> int:
    """Assert ``node`` is in the subset; return how many object properties it holds."""
    if isinstance(node, list):
        return sum(_check(item, f"{where}[{i}]", depth) for i, item in enumerate(node))
    assert isinstance(node, dict), where
    kinds = node.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    assert set(kinds) <= TYPES, (where, kinds)
    allowed = ANY_TYPE.union(*(BY_TYPE.get(kind, set()) for kind in kinds))
    assert set(node) <= allowed, (where, set(node) - allowed)
    assert node.get("format", "date") in FORMATS, where
    assert depth <= MAX_NESTING, where
    count = 0
    if "object" in kinds or "properties" in node:
        assert node.get("additionalProperties") is False, where
        assert sorted(node.get("required", [])) == sorted(node.get("properties", {})), where
        count += len(node.get("properties", {}))
        for name, sub in node.get("properties", {}).items():
            count += _check(sub, f"{where}.{name}", depth + 1)
    for name, sub in node.get("$defs", {}).items():
        count += _check(sub, f"{where}.$defs.{name}", depth)
    for key in ("items", "anyOf"):
        if key in node:
            count += _check(node[key], f"{where}.{key}", depth)
    return count


def _enum_values(node: Any) -> int:
    if isinstance(node, list):
        return sum(_enum_values(item) for item in node)
    if not isinstance(node, dict):
        return 0
    return len(node.get("enum", [])) + sum(_enum_values(v) for v in node.values())


@pytest.mark.parametrize("tool", tools.TOOLS, ids=lambda t: t.name)
def test_every_strict_definition_is_strict_mode_valid(tool: tools.Tool) -> None:
    definition = tools.definition(tool, "openai", strict=True)
    assert definition["function"]["strict"] is True
    parameters = definition["function"]["parameters"]
    assert sorted(parameters["properties"]) == sorted(tool.input.model_fields), tool.name
    assert parameters["type"] == "object" and "anyOf" not in parameters, tool.name
    assert _check(parameters, tool.name) <= MAX_PROPERTIES, tool.name
    assert _enum_values(parameters) <= MAX_ENUM_VALUES, tool.name


@pytest.mark.parametrize("tool", tools.TOOLS, ids=lambda t: t.name)
def test_a_strict_call_with_every_optional_field_null_gets_the_defaults(tool: tools.Tool) -> None:
    fields = tool.input.model_fields
    required = {
        name: ("1" if info.annotation is str else None)
        for name, info in fields.items()
        if info.is_required()
    }
    strict_call = {name: None for name in fields} | {
        name: value for name, value in required.items() if value is not None
    }
    if any(value is None for value in required.values()):
        pytest.skip("a required field that is not text")
    parsed = tools.validated(tool.input, strict_arguments(tool.input, strict_call))
    plain = tools.validated(tool.input, {k: v for k, v in required.items()})
    assert parsed == plain


def test_a_map_comes_as_key_value_pairs() -> None:
    model = tools.find("server_add").input
    pairs = [{"key": "ConnectTimeout", "value": "5"}]
    parsed = tools.validated(
        model,
        strict_arguments(
            model, {"name": "web1", "host": "10.0.0.1", "ssh_options": pairs, "port": None}
        ),
    )
    assert parsed.ssh_options == {"ConnectTimeout": "5"} and parsed.port is None


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 1},  # string lengths are not in the subset
        {"type": "string", "default": "x"},  # nor defaults
        {"type": "string", "format": "uri"},  # nor formats beyond the listed ones
        {"type": "integer", "pattern": "^1"},  # a string keyword on a number
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": []},
        {"type": "object", "properties": {}, "required": [], "additionalProperties": True},
        {"type": "tuple"},
    ],
)
def test_the_oracle_rejects_what_strict_mode_does_not_take(schema: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        _check(schema, "schema")
