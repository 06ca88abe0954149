"""``sane schema`` and ``sane mcp``: sane described for, and served to, agents."""

from __future__ import annotations

from typing import cast

import click

from sane.cli._emit import emit_value
from sane.cli._output import emit, emit_document, socket_option
from sane.errors import UsageError

SCHEMA_EPILOG = """\b
Example:
  $ sane schema run-command --jq '.input.required'
  ["command"]
  $ sane schema --tools anthropic --jq '.[] | .name' | head -3
  run_command
  run_wait
  run_interrupt

\b
Without COMMAND: every command's input and output schema, and the error document's.
COMMAND is a tool name (run_command) or the CLI spelling (run-command, "fleet run").
"""

MCP_EPILOG = """\b
Example (an MCP client's configuration, e.g. Claude Desktop or an agent SDK):
  {"mcpServers": {"sane": {"command": "sane", "args": ["mcp"],
                           "env": {"SANE_TMUX_SOCKET": "work"}}}}

\b
Example (by hand; stdin must stay open until the answer, as a client keeps it):
  $ (printf '%s\\n' "$INITIALIZE" "$INITIALIZED" '{"jsonrpc": "2.0", "id": 2,
      "method": "tools/call", "params": {"name": "run_command",
      "arguments": {"command": "echo hi"}}}'; sleep 3) | sane mcp
  {"jsonrpc":"2.0","id":1,"result":{"capabilities":{"tools":{"listChanged":false}}, ...}}
  {"jsonrpc":"2.0","id":2,"result":{"content":[{"text":"{\\"ok\\": true, ...}",
   "type":"text"}],"isError":false,"structuredContent":{"ok":true,"schema_version":1,
   "run_id":"rbd515f884a69","pane":"%0","command":"echo hi","status":"completed",
   "exit_code":0,"output":"hi\\n", ...}}}
"""


def _tools_list() -> str:
    """Every tool's name (from the command table), wrapped for --help."""
    import textwrap

    from sane.cli.table import TOOL_NAMES

    return (
        "\b\n"
        + textwrap.fill("Tools: " + ", ".join(TOOL_NAMES) + ".", 86)
        + (
            "\nEach returns the same JSON document as the CLI command (`sane schema --tools "
            "mcp`).\n"
        )
    )


MCP_EPILOG += "\n" + _tools_list()


@click.command("schema", epilog=SCHEMA_EPILOG)
@click.argument("command", required=False)
@click.option(
    "--tools",
    "fmt",
    type=click.Choice(["openai", "anthropic", "mcp"]),
    default=None,
    help="Print the ready tool definitions for this API (the list itself, as in "
    "schemas/tools.FMT.json) instead of schemas.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="With --tools openai: definitions for OpenAI's strict mode (every field "
    "required, null for its default; maps as key/value pairs; sane call and "
    "sane mcp take such calls as they are).",
)
def schema_cli(command: str | None, fmt: str | None, strict: bool) -> None:
    """JSON Schema of each command's input and output (from the pydantic models)."""
    from sane import tools
    from sane.schema import json_schema

    if strict and fmt != "openai":
        raise UsageError("--strict goes with --tools openai")
    if fmt is not None:
        picked = [tools.find(command)] if command else list(tools.TOOLS)
        chosen = cast("tools.ToolFormat", fmt)
        emit_value([tools.definition(t, chosen, strict) for t in picked])
    if command is not None:
        tool = tools.find(command)
        emit(
            {
                "command": tool.name,
                "cli": f"sane {tool.cli_path}" if tool.cli else None,
                "input": tools.input_schema(tool),
                "output": tools.output_schema(tool),
            }
        )
    emit(
        {
            "commands": {
                t.name: {
                    "cli": f"sane {t.cli_path}" if t.cli else None,
                    "input": tools.input_schema(t),
                    "output": tools.output_schema(t),
                }
                for t in tools.TOOLS
            },
            "error": tools.compact(json_schema("error")),
        }
    )


CALL_EPILOG = """\b
Example (the arguments exactly as a model produced them for a tool definition):
  $ sane call run_command '{"command": "echo hi; (exit 3)"}'
  {"ok": true, "schema_version": 1, "run_id": "r47185a07e419", "pane": "%1",
   "command": "echo hi; (exit 3)", "status": "completed", "exit_code": 3,
   "output": "hi\\n", "output_base64": null, "output_start": 0, "output_bytes": 3,
   "truncated": false, "full_output_path": null, "shell_exited": false,
   "duration_ms": 145.609}

\b
Prints the same document as the matching command (and as `sane mcp`), with the same
exit status. ARGUMENTS is a JSON object, or `-` to read it from stdin.
"""


@click.command("call", epilog=CALL_EPILOG)
@click.argument("tool")
@click.argument("arguments", default="{}")
@socket_option
def call_cli(tool: str, arguments: str, socket: str | None) -> None:
    """Call TOOL (as in `sane schema --tools`) with a JSON object of arguments."""
    import json
    import sys

    from sane import tools
    from sane.errors import InvalidArgument
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    text = sys.stdin.read() if arguments == "-" else arguments
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"arguments are not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("arguments must be a JSON object")
    with Context(TmuxServer.from_env(socket)) as ctx:
        outcome = tools.call(ctx, tool, parsed)
    emit_document(outcome.document, outcome.exit_status)


@click.command("mcp", epilog=MCP_EPILOG)
@click.option(
    "--tools",
    "only",
    metavar="NAMES",
    help="Serve only these tools (comma-separated names; `read-only` for the "
    "tools that change nothing: lists, screens, health, status).",
)
@click.option("--exclude", metavar="NAMES", help="Serve every tool but these (same names).")
@socket_option
def mcp_cli(only: str | None, exclude: str | None, socket: str | None) -> None:
    """Serve sane's commands as MCP tools over stdio (one process, many fast calls)."""
    from sane import tools

    exposed = tools.select(only, exclude)
    from importlib.util import find_spec

    if find_spec("mcp") is None:  # an optional dependency: say how to get it
        from sane.errors import UsageError

        raise UsageError(
            "sane mcp needs the MCP SDK, an optional dependency: install"
            " tmux-sane[mcp] (pipx install 'tmux-sane[mcp]', or"
            " pip install 'tmux-sane[mcp]')",
            extra="mcp",
        )
    from sane.mcp import serve

    serve(socket, exposed)
