"""The checked-in schemas (schemas/) are exactly what the models generate, and the input
models stay in step with the CLI commands they mirror."""

from __future__ import annotations

from pathlib import Path

import click

from sane import tools
from sane.cli.group import cli
from sane.schema_files import render

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
REGENERATE = "regenerate with: .venv/bin/python -m sane.schema_files schemas"

# Input fields spelt differently from the CLI parameter (tool field -> CLI names).
RENAMED = {
    "all": {"all_sessions", "all_servers"}, "sha256": {"expected"}, "query": {"query_expr"},
    "ssh_options": {"ssh_options"}, "tags": {"tags"}, "identity": {"identity"},
    "env": {"env_pairs"},
}
MCP_ONLY = {
    "content_base64",  # binary content: the CLI reads it from a file or stdin instead
    "on_cancel",  # a cancelled call: the CLI has Ctrl-C
    "max_output_per_server",  # an agent's context: the CLI streams, and keeps it all
}
# Fields only some tools have on the MCP side (tool -> fields).
MCP_ONLY_IN = {"fleet_run": {"max_output"}, "run_interrupt": {"force"},
               # a client's request timeout: the CLI waits (and streams with --stream)
               "deploy": {"wait"}, "deploy_resume": {"wait"}, "deploy_rollback": {"wait"}}


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


def test_every_input_field_is_an_option_of_the_matching_cli_command() -> None:
    for tool in (t for t in tools.TOOLS if t.cli):  # agent-only tools have no CLI yet
        params = {p.name for p in _command(tool.cli).params if p.name}
        for field in tool.input.model_fields:
            spellings = RENAMED.get(field, {field})
            assert spellings & params or field in MCP_ONLY or field in MCP_ONLY_IN.get(
                tool.name, set()), (
                f"{tool.name}.{field} has no option in `sane {tool.cli}` ({sorted(params)})")


def test_sane_mcp_help_names_every_tool() -> None:
    from sane.cli.schema import MCP_EPILOG

    listed = MCP_EPILOG.partition("Tools:")[2].replace("\n", " ")
    assert [name.strip(" .") for name in listed.split("Each")[0].split(",")] == [
        t.name for t in tools.TOOLS]
