"""``sane-run-command`` as a click command (``sane.cli.main.run_command_main``, the
installed entry point, parses the usual lines without click and comes here for the
rest)."""

from __future__ import annotations

import click

from sane.cli._output import socket_option
from sane.cli.actions import emit_run, exit_status_for, run_command_action

__all__ = ["emit_run", "exit_status_for", "main", "run_command_cli"]

EPILOG = """\b
Example:
  $ sane-run-command --pane %3 'printf "a\\nb"; exit 3'
  {"ok": true, "schema_version": 1, "run_id": "r6f0c2a91d4e7", "pane": "%3",
   "command": "printf \\"a\\\\nb\\"; exit 3", "status": "completed", "exit_code": 3,
   "output": "a\\nb", "output_base64": null, "output_start": 0, "output_bytes": 3,
   "truncated": false, "full_output_path": null, "shell_exited": true,
   "duration_ms": 4.2}

\b
Exit status: 0 completed (1 with --check and a non-zero exit code), 4 running,
waiting_input or interrupted, 5 lost, other codes for errors (see docs/errors.md).
"""


quiet_period_option = click.option(
    "--quiet-period", type=click.FloatRange(min=0), default=0.3, show_default=True,
    help="Seconds without output after which sane checks whether the command waits for "
         "terminal input (then `waiting_input`, with `prompt`); 0: never check.")


def run_options(f: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed([
        socket_option,
        click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
                     help="Seconds to wait; past it the run is reported `running`."),
        click.option("--interrupt-on-timeout", is_flag=True,
                     help="Send C-c at the timeout and report `interrupted`."),
        click.option("--keep-ansi", is_flag=True,
                     help="Keep the program's escape sequences (colour, cursor moves)."),
        click.option("--check", is_flag=True,
                     help="Exit 1 (command_failed) on a non-zero exit code."),
        click.option("--max-output", type=click.IntRange(min=0), default=1 << 20, show_default=True,
                     help="Truncate output in the middle past this many bytes (0: no limit)."),
        quiet_period_option,
    ]):
        f = decorator(f)
    return f


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", "-s", "server", default=None, metavar="NAME",
              help="Run through this registered server's ssh pane (connects on demand).")
@click.option("--pane", "-t", default=None, metavar="TARGET",
              help="tmux target pane (%ID or session:window.pane); default: sane's local pane.")
@run_options
@click.argument("command", nargs=-1, required=True)
def run_command_cli(
    server: str | None, pane: str | None, socket: str | None, timeout: float,
    interrupt_on_timeout: bool,
    keep_ansi: bool, check: bool, max_output: int, quiet_period: float,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in a tmux pane's shell and print exactly what it printed and its
    exit code. COMMAND words are joined with spaces; a single `-` reads it from stdin."""
    run_command_action(server, pane, socket, timeout, interrupt_on_timeout, keep_ansi, check,
                       max_output, quiet_period, command)


def main() -> None:
    """The front door (an entry point installed before it moved there still works)."""
    from sane.cli.main import run_command_main

    run_command_main()


if __name__ == "__main__":
    main()
