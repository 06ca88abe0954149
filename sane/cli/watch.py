"""``sane watch``: a live fleet view, meant for the orchestrator window."""

from __future__ import annotations

import sys
import time

import click

from sane.cli._output import emit, socket_option

EPILOG = """\b
Example:
  $ sane watch --once --no-health
  {"ok": true, "schema_version": 1, "servers": [{"server": "s1",
   "host": "127.0.0.1:41935", "tags": ["web"], "pane": "%2", "connection": "connected",
   "run_id": null, "health": null, "health_reason": null, "version": null}, ...]}
"""


@click.command("watch", epilog=EPILOG)
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True)
@click.option("--once", is_flag=True, help="Print one JSON snapshot and exit.")
@click.option("--no-health", is_flag=True, help="Skip reading health.json (cheaper).")
@socket_option
def watch(interval: float, once: bool, no_health: bool, socket: str | None) -> None:
    """Servers, connection, health and current runs, refreshed every --interval
    seconds until C-c (or one JSON snapshot with --once)."""
    from sane.fleet.watch import render, snapshot
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        if once:
            emit(snapshot(ctx, not no_health))
        try:
            while True:
                text = render(snapshot(ctx, not no_health))
                stamp = time.strftime("%H:%M:%S")
                sys.stderr.write(f"\x1b[H\x1b[2Jsane watch  {stamp}  (C-c to stop)\n\n{text}")
                sys.stderr.flush()
                time.sleep(interval)  # the refresh period the user asked for
        except KeyboardInterrupt:
            pass
    emit({"stopped": True})
