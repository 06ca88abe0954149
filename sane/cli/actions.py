"""What the hottest one-shot commands do once their arguments are parsed, without click.

The click command and the fast front door (``sane.cli.fast``) both call these, so the
two ways in cannot drift apart in what they do; ``tests/test_fast_cli.py`` checks that
they parse alike.
"""

from __future__ import annotations

from typing import NoReturn

from sane.cli._emit import emit


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
