"""``sane-run-command``: run one command in a pane, print its exact result."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from sane.cli._output import emit, emit_error, entry, socket_option
from sane.envelope import check_failure
from sane.errors import EXIT_CONNECTION, EXIT_TIMEOUT

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


def exit_status_for(result: dict[str, object]) -> int:
    status = result["status"]
    if status == "completed":
        return 0
    if status == "lost":
        return EXIT_CONNECTION
    return EXIT_TIMEOUT


def emit_run(result: dict[str, object], check: bool) -> NoReturn:
    failure = check_failure(result) if check else None
    if failure is not None:
        emit_error(failure, extra=result)
    emit(result, exit_status_for(result))


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
    text = sys.stdin.read() if command == ("-",) else " ".join(command)
    from sane.ops.context import Context
    from sane.ops.runs import RunOptions, run_command
    from sane.tmux.command import TmuxServer

    options = RunOptions(timeout=timeout, interrupt_on_timeout=interrupt_on_timeout,
                         keep_ansi=keep_ansi, max_output=max_output or None,
                         quiet_period=quiet_period or None)
    with Context(TmuxServer.from_env(socket)) as ctx:
        if server is not None:
            from sane.fleet.panes import resolve_target

            pane = resolve_target(ctx, pane, server)
        result = run_command(ctx, text, pane=pane, options=options)
    emit_run(dict(result), check)


main = entry(run_command_cli)

if __name__ == "__main__":
    main()
