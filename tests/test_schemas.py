"""The checked-in schemas (schemas/) are exactly what the models generate, and the input
models stay in step with the CLI commands they mirror."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from sane import tools
from sane.cli.build import params as build_params
from sane.cli.generate import cli_words
from sane.cli.group import cli
from sane.cli.table import COMMANDS
from sane.schema_files import DOCS, TABLE, render, render_docs, render_table

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
REGENERATE = "regenerate with: .venv/bin/python -m sane.schema_files"

# CLI commands that are no command of the table: they serve or describe the table
# itself, or show it to a person.
META = {"schema", "mcp", "call", "watch", "demo"}


def test_checked_in_schemas_match_the_models() -> None:
    expected = render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), REGENERATE
    for name, text in expected.items():
        assert on_disk[name] == text, f"schemas/{name} drifted from the models; {REGENERATE}"


def _command(path: str) -> click.Command:
    command: click.Command = cli
    for word in path.split():
        assert isinstance(command, click.Group)
        with click.Context(command) as ctx:
            found = command.get_command(ctx, word)
        assert found is not None, path
        command = found
    return command


def _leaves(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    if not isinstance(command, click.Group) or command.invoke_without_command:
        yield path, command  # a command (`sane health` is a group and a command)
    if isinstance(command, click.Group):
        with click.Context(command) as ctx:
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                yield from _leaves(sub, f"{path} {name}".strip())


def test_the_cli_table_is_generated_from_the_command_table() -> None:
    assert TABLE.read_text(encoding="utf-8") == render_table(), (
        f"sane/cli/table.py drifted from sane.tools.TOOLS; {REGENERATE}"
    )


def test_the_docs_command_table_is_generated_from_the_command_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert text == render_docs(text), f"docs/commands.md's command table drifted; {REGENERATE}"


def test_every_cli_command_is_built_from_its_table_row() -> None:
    """Walk the CLI tree: each command is a row of the table, and its click parameters
    are the row's (names, options, defaults, help), nothing written beside it."""
    for path, command in _leaves(cli, ""):
        if path.split()[0] in META:
            continue
        assert path in COMMANDS, f"`sane {path}` has no row in the command table"
        expected = {}
        for param in COMMANDS[path]["params"]:
            for built in build_params(param):
                expected[(built.name, tuple(built.opts))] = (
                    built.default,
                    getattr(built, "help", None),
                )
        actual = {
            (p.name, tuple(p.opts)): (p.default, getattr(p, "help", None))
            for p in command.params
            if p.name != "help"
        }
        assert actual == expected, path
        assert command.help == COMMANDS[path]["help"], path


def test_the_table_agrees_with_the_tools() -> None:
    """Each row's command line offers exactly the tool's fields (less those it omits on
    purpose), with the tool's defaults (but for the few it overrides on purpose), and
    the tool's help (tool names spelt as commands)."""
    for tool in tools.TOOLS:
        if tool.cli is None:
            continue
        row = COMMANDS[tool.cli.path]
        assert row["tool"] == tool.name
        fields = tool.input.model_fields
        offered = {p["name"]: p for p in row["params"] if not p.get("cli_only")}
        assert set(offered) | set(tool.cli.omit) == set(fields), tool.name
        for name, param in offered.items():
            info = fields[name]
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            assert param["default"] == tool.cli.defaults.get(name, default), (tool.name, name)
            assert param["help"] == cli_words(
                " ".join((info.description or "").split()), tools.TOOLS
            ), (tool.name, name)
            assert param["required"] == info.is_required(), (tool.name, name)


def test_sane_mcp_help_names_every_tool() -> None:
    from sane.cli.mcp import MCP_EPILOG

    listed = MCP_EPILOG.partition("Tools:")[2].replace("\n", " ")
    assert [name.strip(" .") for name in listed.split("Each")[0].split(",")] == [
        t.name for t in tools.TOOLS
    ]


def test_the_agent_docs_list_every_tool_and_the_read_only_set() -> None:
    import json
    import re

    text = (SCHEMAS.parent / "docs" / "agents.md").read_text(encoding="utf-8")
    listed = re.search(r"tools/list -> (\[.*?\])", text)
    assert listed is not None
    assert json.loads(listed.group(1)) == [t.name for t in tools.TOOLS]
    read_only = re.search(
        r"`read-only` stands\s+for every tool that changes nothing: (.*?)\)", text, re.S
    )
    assert read_only is not None
    assert sorted(re.findall(r"`([a-z_]+)`", read_only.group(1))) == sorted(
        t.name for t in tools.TOOLS if t.read_only
    )


def test_every_cli_command_outside_the_table_has_a_document() -> None:
    """A CLI leaf with no table row prints a document that ``sane schema`` describes
    (sane.tools.CLI_DOCUMENTS), but for the commands that serve or describe the table
    itself."""
    outside = {path for path, _ in _leaves(cli, "") if path and path not in COMMANDS}
    assert outside - set(tools.CLI_DOCUMENTS) == {"schema", "mcp", "call"}
    assert set(tools.CLI_DOCUMENTS) <= outside
