"""``sane-list-panes``: the panes of a tmux server as JSON."""

from __future__ import annotations

import click

from sane.cli._output import emit, entry, socket_option

EPILOG = """\b
Example:
  $ sane-list-panes
  {"ok": true, "schema_version": 1, "panes": [{"pane_id": "%0", "session": "sane",
   "window_index": 0, "window_name": "local", "pane_index": 0, "title": "host",
   "current_command": "bash", "cwd": "/root", "width": 200, "height": 50,
   "active": true, "dead": false, "sane_role": "local", "sane_server": null,
   "busy": false, "run_id": null}]}
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--session", "-s", default=None, help="Session to list (default: sane's session).")
@click.option("--all", "-a", "all_sessions", is_flag=True, help="List the panes of every session.")
@socket_option
def list_panes_cli(session: str | None, all_sessions: bool, socket: str | None) -> None:
    """List panes with their sane role, server and busy state."""
    from sane.ops.context import Context
    from sane.ops.list_panes import list_panes
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        result = list_panes(ctx, session=session, all_sessions=all_sessions)
    emit(dict(result))


main = entry(list_panes_cli)

if __name__ == "__main__":
    main()
