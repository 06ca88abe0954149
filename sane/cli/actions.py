"""What the hottest one-shot commands do once their arguments are parsed, without click.

The click command and the fast front door (``sane.cli.fast``) both call these, so the
two ways in cannot drift apart in what they do; ``tests/test_fast_cli.py`` checks that
they parse alike.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from sane.cli._emit import emit, emit_error


def exit_status_for(result: dict[str, object]) -> int:
    """A run's exit status: 0 completed, 5 lost, 4 running/waiting_input/interrupted."""
    from sane.errors import EXIT_CONNECTION, EXIT_TIMEOUT

    status = result["status"]
    if status == "completed":
        return 0
    if status == "lost":
        return EXIT_CONNECTION
    return EXIT_TIMEOUT


def emit_run(result: dict[str, object], check: bool) -> NoReturn:
    from sane.envelope import check_failure

    failure = check_failure(result) if check else None
    if failure is not None:
        emit_error(failure, extra=result)
    emit(result, exit_status_for(result))


def run_command_action(server: str | None, pane: str | None, socket: str | None,
                       timeout: float, interrupt_on_timeout: bool, keep_ansi: bool,
                       check: bool, max_output: int, quiet_period: float,
                       command: tuple[str, ...]) -> NoReturn:
    """``sane-run-command``: one command in one pane, its exact result."""
    from sane.ops.context import Context
    from sane.ops.runs import RunOptions, run_command
    from sane.tmux.command import TmuxServer

    text = sys.stdin.read() if command == ("-",) else " ".join(command)
    options = RunOptions(timeout=timeout, interrupt_on_timeout=interrupt_on_timeout,
                         keep_ansi=keep_ansi, max_output=max_output or None,
                         quiet_period=quiet_period or None)
    with Context(TmuxServer.from_env(socket)) as ctx:
        if server is not None:
            from sane.fleet.panes import resolve_target

            pane = resolve_target(ctx, pane, server)
        result = run_command(ctx, text, pane=pane, options=options)
    emit_run(dict(result), check)


def fleet_run_action(command: tuple[str, ...], servers: str | None, tag: str | None,
                     all_servers: bool, max_parallel: int, timeout: float, stream: bool,
                     socket: str | None) -> NoReturn:
    """``sane fleet run``: the command on every selected server, then one document."""
    from sane.cli._select import selected_for_run, split_names
    from sane.cli._stream import progress
    from sane.fleet.run import fleet_run
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    selected = selected_for_run(split_names(servers), tag, all_servers)
    with progress(stream) as on_event, Context(TmuxServer.from_env(socket)) as ctx:
        result = fleet_run(ctx, selected, " ".join(command), max_parallel, timeout, on_event)
    emit(result, 0 if result["status"] == "completed" else 1)
