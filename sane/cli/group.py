"""``sane``: every command under one group, as click commands.

``sane.cli.main`` is the front door: it sends the hottest one-shots past click and
everything else here."""

from __future__ import annotations

import importlib

import click

from sane import __version__
from sane.cli.build import command
from sane.errors import (
    EXIT_BUSY,
    EXIT_COMMAND_FAILED,
    EXIT_CONNECTION,
    EXIT_INTERNAL,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STATE,
    EXIT_TIMEOUT,
    EXIT_TMUX,
    EXIT_USAGE,
)

# Subcommands are imported when used (``sane fleet run`` loads the fleet module only):
# name -> (module, attribute).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "run-command": ("sane.cli.run_command", "run_command_cli"),
    "list-panes": ("sane.cli.list_panes", "list_panes_cli"),
    "create-file": ("sane.cli.create_file", "create_file_cli"),
    "detect-platform": ("sane.cli.detect_platform", "detect_platform_cli"),
    "read-screen": ("sane.cli.screen", "read_screen_cli"),
    "send-keys": ("sane.cli.screen", "send_keys_cli"),
    "wait-for-text": ("sane.cli.screen", "wait_for_text_cli"),
    "server": ("sane.cli.server", "server_group"),
    "up": ("sane.cli.fleet", "up"),
    "connect": ("sane.cli.fleet", "connect"),
    "down": ("sane.cli.fleet", "down"),
    "fleet": ("sane.cli.fleet_run", "fleet_group"),
    "health": ("sane.cli.health", "health_group"),
    "watch": ("sane.cli.watch", "watch"),
    "deploy": ("sane.cli.deploy", "deploy_group"),
    "demo": ("sane.cli.demo", "demo_group"),
    "schema": ("sane.cli.schema", "schema_cli"),
    "mcp": ("sane.cli.mcp", "mcp_cli"),
    "call": ("sane.cli.schema", "call_cli"),
}


class LazyGroup(click.Group):
    """A group whose subcommands (other than those defined here) load on first use:
    every `sane X` would otherwise import every command's module (~15 ms)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click suggests only from the commands it has loaded: offer the lazy ones
        too (`sane helth` -> "Did you mean 'health'?")."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None


WAIT_EPILOG = """\b
Example (a run left `running` by --timeout 1):
  $ sane run wait r6f0c2a91d4e7 --timeout 60
  {"ok": true, "schema_version": 1, "run_id": "r6f0c2a91d4e7", "status": "completed",
   "exit_code": 0, "output": "rest of the output\\n", "output_start": 120, ...}
"""


CLI_EPILOG = (
    """\b
Example:
  $ sane run-command 'cd /tmp && printf "a\\nb"; (exit 3)'
  {"ok": true, "schema_version": 1, "run_id": "r23d7a1a4a96a", "pane": "%1",
   "command": "cd /tmp && printf \\"a\\\\nb\\"; (exit 3)", "status": "completed",
   "exit_code": 3, "output": "a\\nb", "output_base64": null, "output_start": 0,
   "output_bytes": 3, "truncated": false, "full_output_path": null,
   "shell_exited": false, "duration_ms": 216.427}

\b
Output: a person at a terminal gets tables, `[server]` lines and a one-line summary;
through a pipe, or with --json, every command prints one JSON document (`sane schema`
describes them all); --jq EXPR prints jq's results for it instead (as gh --jq).
`sane mcp` serves the same commands to MCP clients.

"""
    + f"""\b
Exit status: {EXIT_OK} ok; {EXIT_COMMAND_FAILED} the command failed (--check) or a fleet run
was not all ok; {EXIT_USAGE} usage or invalid input; {EXIT_NOT_FOUND} not found;
{EXIT_TIMEOUT} timeout (still running, waiting for input); {EXIT_CONNECTION} connection or
authentication failed; {EXIT_TMUX} tmux failed; {EXIT_STATE} a state file invalid or locked;
{EXIT_BUSY} the pane is busy; {EXIT_INTERNAL} a bug. Every error's code and status: docs/errors.md.

\b
Shell completion: eval "$(_SANE_COMPLETE=bash_source sane)" in ~/.bashrc
(zsh_source in ~/.zshrc; fish: _SANE_COMPLETE=fish_source sane | source).
"""
)

RUN_EPILOG = """\b
Example:
  $ sane-run-command --timeout 0.5 'sleep 600'    # -> "status": "running"
  $ sane run interrupt r4c1bfde2e0b8
  {"ok": true, "schema_version": 1, "run_id": "r4c1bfde2e0b8", "pane": "%4",
   "command": "sleep 600", "status": "interrupted", "exit_code": 130, "output": "", ...}
"""


@click.group(
    cls=LazyGroup, epilog=CLI_EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(
    __version__, "-V", "--version", prog_name="sane", message="%(prog)s %(version)s"
)
def cli() -> None:
    """tmux-sane: run commands in tmux panes and get exact results as JSON."""


@cli.group(epilog=RUN_EPILOG)
def run() -> None:
    """Follow up on a run left `running` by a timeout or `waiting_input` at a prompt."""


INPUT_EPILOG = """\b
Example (a run that stopped at `read -p 'Name? ' n`):
  $ sane run input r6f0c2a91d4e7 Ada
  {"ok": true, "schema_version": 1, "run_id": "r6f0c2a91d4e7", "status": "completed",
   "exit_code": 0, "output": "Ada\\nhello Ada\\n", ...}
  $ printf '%s\\n' "$PASSWORD" | sane run input r6f0c2a91d4e7 -   # not in argv
"""

# Options, defaults and help: the command table (sane.tools, rows run_*).
run.add_command(command("run wait", WAIT_EPILOG))
run.add_command(command("run interrupt", RUN_EPILOG))
run.add_command(command("run input", INPUT_EPILOG))
