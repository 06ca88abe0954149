"""``sane schema`` and ``sane mcp``: sane described for, and served to, agents."""

from __future__ import annotations

from typing import cast

import click

from sane.cli._output import emit, socket_option

SCHEMA_EPILOG = """\b
Example:
  $ sane schema run-command --jq '.input.required'
  ["command"]
  $ sane schema --tools anthropic --jq '.tools[] | .name' | head -3
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

\b
Tools: run_command, run_wait, run_interrupt, create_file, detect_platform,
list_panes, server_list, server_add, server_test, fleet_run, health, health_wait.
Each returns the same JSON document as the CLI command (`sane schema --tools mcp`).
"""


@click.command("schema", epilog=SCHEMA_EPILOG)
@click.argument("command", required=False)
@click.option("--tools", "fmt", type=click.Choice(["openai", "anthropic", "mcp"]), default=None,
              help="Print ready tool definitions for this API instead of schemas.")
def schema_cli(command: str | None, fmt: str | None) -> None:
    """JSON Schema of each command's input and output (from the pydantic models)."""
    from sane import tools
    from sane.schema import json_schema

    if fmt is not None:
        picked = [tools.find(command)] if command else list(tools.TOOLS)
        chosen = cast("tools.ToolFormat", fmt)
        emit({"format": fmt, "tools": [tools.definition(t, chosen) for t in picked]})
    if command is not None:
        tool = tools.find(command)
        emit({"command": tool.name, "cli": f"sane {tool.cli}",
              "input": tools.input_schema(tool), "output": tools.output_schema(tool)})
    emit({"commands": {t.name: {"cli": f"sane {t.cli}", "input": tools.input_schema(t),
                                "output": tools.output_schema(t)} for t in tools.TOOLS},
          "error": json_schema("error")})


@click.command("mcp", epilog=MCP_EPILOG)
@socket_option
def mcp_cli(socket: str | None) -> None:
    """Serve sane's commands as MCP tools over stdio (one process, many fast calls)."""
    from sane.mcp import serve

    serve(socket)
