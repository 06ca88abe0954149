"""``sane up | connect | down``: the orchestrator session."""

from __future__ import annotations

import click

from sane.cli._output import emit, socket_option
from sane.errors import EXIT_CONNECTION

CONNECT_EPILOG = """\b
Example:
  $ sane connect web1 web2
  {"ok": true, "schema_version": 1, "session": "sane", "servers": [
   {"server": "web1", "ok": true, "pane": "%4", "error": null, "duration_ms": 412.0},
   {"server": "web2", "ok": false, "pane": null, "error": {"code": "auth_failed",
    "message": "web2 (10.0.0.12:22): root@10.0.0.12: Permission denied (publickey).",
    "details": {...}}, "duration_ms": 131.2}]}
Exit status 0 when every server connected, 5 otherwise.
"""


def _connect(names: tuple[str, ...], tag: str | None, all_servers: bool, accept_new: bool,
             max_parallel: int, socket: str | None) -> None:
    from sane.cli._select import selected_servers
    from sane.cli._stream import progress
    from sane.fleet.panes import connect_many, ensure_session
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    servers = selected_servers(names, tag, all_servers)
    with Context(TmuxServer.from_env(socket)) as ctx, progress(False):  # a person's spinner
        ensure_session(ctx)
        reports = connect_many(ctx, servers, accept_new, max_parallel)
    ok = all(r["ok"] for r in reports)
    emit({"session": ctx.session_name, "servers": reports}, 0 if ok else EXIT_CONNECTION)


def connect_options(f: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed([
        click.argument("names", nargs=-1),
        click.option("--tag", default=None, help="Servers with this tag."),
        click.option("--all", "all_servers", is_flag=True, help="Every registered server."),
        click.option("--accept-new", is_flag=True,
                     help="Trust a server's host key on first contact (never a changed one)."),
        click.option("--max-parallel", type=click.IntRange(min=1), default=5, show_default=True),
        socket_option,
    ]):
        f = decorator(f)
    return f


@click.command("up", epilog=CONNECT_EPILOG)
@connect_options
def up(names: tuple[str, ...], tag: str | None, all_servers: bool, accept_new: bool,
       max_parallel: int, socket: str | None) -> None:
    """Open the orchestrator session and an ssh pane per server (all by default)."""
    _connect(names, tag, all_servers, accept_new, max_parallel, socket)


@click.command("connect", epilog=CONNECT_EPILOG)
@connect_options
def connect(names: tuple[str, ...], tag: str | None, all_servers: bool, accept_new: bool,
            max_parallel: int, socket: str | None) -> None:
    """(Re)connect servers' panes: live ones are reused, dead ones replaced."""
    _connect(names, tag, all_servers, accept_new, max_parallel, socket)


DOWN_EPILOG = """\b
Example:
  $ sane down s2
  {"ok": true, "schema_version": 1, "closed": ["s2"]}
"""


@click.command("down", epilog=DOWN_EPILOG)
@click.argument("names", nargs=-1)
@socket_option
def down(names: tuple[str, ...], socket: str | None) -> None:
    """Close the ssh panes of NAMES (all of them by default)."""
    from sane.fleet.panes import down as close
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        closed = close(ctx, list(names) or None)
    emit({"closed": closed})
