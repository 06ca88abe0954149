"""`sane schema --tools openai --strict`: definitions OpenAI's strict mode accepts, and
calls made against them (nulls, key/value pairs) work as the plain ones do."""

from __future__ import annotations

from typing import Any

import pytest

from sane import tools
from sane.handlers import strict_arguments

# The keywords strict mode takes (OpenAI's supported subset of JSON Schema).
ALLOWED = {
    "type",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "$defs",
    "$ref",
}


def _check(node: Any, where: str) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check(item, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    assert set(node) <= ALLOWED, (where, set(node) - ALLOWED)
    if node.get("type") == "object" or "properties" in node:
        assert node.get("additionalProperties") is False, where
        assert sorted(node.get("required", [])) == sorted(node.get("properties", {})), where
    for key in ("properties", "$defs"):
        for name, sub in node.get(key, {}).items():
            _check(sub, f"{where}.{name}")
    for key in ("items", "anyOf"):
        if key in node:
            _check(node[key], f"{where}.{key}")


@pytest.mark.parametrize("tool", tools.TOOLS, ids=lambda t: t.name)
def test_every_strict_definition_is_strict_mode_valid(tool: tools.Tool) -> None:
    definition = tools.definition(tool, "openai", strict=True)
    assert definition["function"]["strict"] is True
    parameters = definition["function"]["parameters"]
    assert sorted(parameters["properties"]) == sorted(tool.input.model_fields), tool.name
    _check(parameters, tool.name)


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
