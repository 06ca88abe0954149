"""``sane watch``: a live fleet view, meant for the orchestrator window."""

from __future__ import annotations

import os
import sys
import time

import click

from sane.cli._output import emit, socket_option

HEALTH_INTERVAL = 10.0

EPILOG = """\b
Example:
  $ sane watch --once --no-health
  {"ok": true, "schema_version": 1, "servers": [{"server": "s1",
   "host": "127.0.0.1:41935", "tags": ["web"], "pane": "%2", "connection": "connected",
   "run_id": null, "health": null, "health_reason": null, "version": null}, ...]}
"""


@click.command("watch", epilog=EPILOG)
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True)
@click.option(
    "--health-interval",
    type=click.FloatRange(min=1),
    default=HEALTH_INTERVAL,
    show_default=True,
    help="Seconds between health reads of the live view (in the background, servers "
    "with a live pane only).",
)
@click.option("--tag", default=None, help="Only the servers with this tag.")
@click.option("--once", is_flag=True, help="Print one JSON snapshot and exit.")
@click.option("--no-health", is_flag=True, help="Skip reading health.json (cheaper).")
@socket_option
def watch(
    interval: float,
    health_interval: float,
    tag: str | None,
    once: bool,
    no_health: bool,
    socket: str | None,
) -> None:
    """Servers, connection, health and current runs, refreshed every --interval
    seconds until C-c (or one JSON snapshot with --once). Fits the terminal: the
    counts, each tag's, then the servers in trouble first."""
    from sane.fleet.watch import HealthReader, live_snapshot, render, snapshot
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        if once:
            emit(snapshot(ctx, not no_health, tag))
        reader = None if no_health else HealthReader(ctx.home, health_interval)
        try:
            while True:
                snap = live_snapshot(ctx, reader, tag)
                size = _size()
                stamp = time.strftime("%H:%M:%S")
                text = render(
                    snap,
                    size.columns,
                    size.lines - 2,  # the title line and the blank one after it
                    reader.status() if reader else "--no-health",
                )
                # No newline after the last line: on the terminal's last row it would
                # scroll the title away.
                title = f"sane watch  {stamp}  (C-c to stop)"
                sys.stderr.write(f"\x1b[H\x1b[2J{title}\n\n{text.rstrip()}")
                sys.stderr.flush()
                time.sleep(interval)  # the refresh period the user asked for
        except KeyboardInterrupt:
            pass
    emit({"stopped": True})


def _size() -> os.terminal_size:
    """The terminal the view is drawn on (stderr), else COLUMNS/LINES, else 100x40."""
    try:
        return os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        import shutil

        return shutil.get_terminal_size((100, 40))
