"""``sane schema`` and ``sane call``: sane described for agents, and one tool call from
JSON (``sane mcp`` is :mod:`sane.cli.mcp`)."""

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
    if command is not None and tools.cli_document(command) is not None:
        path = next(p for p, d in tools.CLI_DOCUMENTS.items() if d == tools.cli_document(command))
        emit(
            {
                "command": path,
                "cli": f"sane {path}",
                "input": None,
                "output": tools.compact(json_schema(tools.CLI_DOCUMENTS[path])),
            }
        )
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
            # no tool: printed by these commands only (no input schema)
            "cli_only": {
                path: {"cli": f"sane {path}", "output": tools.compact(json_schema(document))}
                for path, document in tools.CLI_DOCUMENTS.items()
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
