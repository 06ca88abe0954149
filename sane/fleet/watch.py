"""A snapshot of the fleet for ``sane watch``: servers, connection, health, runs; and
its text for a terminal that stays readable at 1,000 servers.

Cost per refresh, whatever the fleet's size: the registry, one tmux command (every
pane of the session with its state, ``server_panes``) and the run records of busy
panes (files). Health is not read at every refresh: a :class:`HealthReader` reads it
in the background, over the connections that are up, at most every
``health_interval`` seconds (one ``cat`` per connected server per read), and the
refreshes in between show what it last found.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sane.fleet.health import check
from sane.fleet.panes import server_panes
from sane.fleet.registry import Registry, Server
from sane.ops.context import Context
from sane.ops.run.busy import pane_busy
from sane.ops.run.holder import run_of
from sane.tmux.panes import PaneState
from sane.visible import visible

Row = dict[str, Any]


def _servers(ctx: Context, tag: str | None) -> list[Server]:
    servers = Registry(ctx.home).servers()
    return servers if tag is None else [s for s in servers if tag in s.tags]


def snapshot(ctx: Context, with_health: bool = True, tag: str | None = None) -> dict[str, Any]:
    """One row per registered server (with ``tag``, if given): pane, connection,
    current run, health (every server's, read now, unless not ``with_health``):
    ``sane watch --once``."""
    servers = _servers(ctx, tag)
    panes = server_panes(ctx)
    health = (
        {r["server"]: r for r in check(ctx.home, servers)["servers"]}
        if (with_health and servers)
        else {}
    )
    return {"servers": _rows(ctx, servers, panes, health)}


def live_snapshot(
    ctx: Context, reader: HealthReader | None, tag: str | None = None
) -> dict[str, Any]:
    """A refresh of the live view: health as ``reader`` last read it (a new read
    started in the background when one is due), none without a reader."""
    servers = _servers(ctx, tag)
    panes = server_panes(ctx)
    if reader is None:
        return {"servers": _rows(ctx, servers, panes, {})}
    live = [s for s in servers if s.name in panes and not panes[s.name].dead]
    reader.start_if_due(live)
    return {"servers": _rows(ctx, servers, panes, reader.reports)}


def _rows(
    ctx: Context,
    servers: Sequence[Server],
    panes: Mapping[str, PaneState],
    health: Mapping[str, Mapping[str, Any]],
) -> list[Row]:
    rows = []
    for server in servers:
        state = panes.get(server.name)
        busy = state is not None and pane_busy(ctx, state.busy_flag)
        report = health.get(server.name)
        rows.append(
            {
                "server": server.name,
                "host": f"{server.host}:{server.port}",
                "tags": server.tags,
                "pane": state.pane_id if state else None,
                "connection": "disconnected"
                if state is None
                else "unreachable"
                if state.dead
                else "connected",
                "run_id": run_of(state.busy_flag) if busy and state else None,
                "health": report["status"] if report else None,
                "health_reason": report["reason"] if report else None,
                "version": (report.get("data") or {}).get("version") if report else None,
            }
        )
    return rows


class HealthReader:
    """The connected servers' health, read in a background thread at most every
    ``interval`` seconds (never two reads at once: a read that takes longer than the
    interval delays the next). A server without a live pane is not read: its health
    would cost a new ssh connection at every read (at 1,000 servers, 1,000 logins)."""

    def __init__(self, home: Path, interval: float) -> None:
        self.home = home
        self.interval = interval
        self.reports: dict[str, dict[str, Any]] = {}
        self.read_at: float | None = None
        self.reading: tuple[int, int] | None = None  # (done, of) while a read runs
        self._thread: threading.Thread | None = None

    def start_if_due(self, servers: list[Server]) -> None:
        """Start reading ``servers``' health unless a read runs or the last is recent."""
        due = self.read_at is None or time.monotonic() - self.read_at >= self.interval
        busy = self._thread is not None and self._thread.is_alive()
        if due and not busy and servers:
            self.reading = (0, len(servers))
            self._thread = threading.Thread(
                target=self._read, args=(servers,), name="sane-watch-health", daemon=True
            )
            self._thread.start()

    def _read(self, servers: list[Server]) -> None:
        done = 0

        def on_event(event: dict[str, Any]) -> None:
            nonlocal done
            if event["event"] == "finished":
                done += 1
                self.reading = (done, len(servers))

        try:
            found = check(self.home, servers, on_event=on_event)["servers"]
            self.reports = {r["server"]: r for r in found}  # one assignment: no torn reads
        finally:
            self.read_at = time.monotonic()
            self.reading = None

    def status(self) -> str:
        """``health read 4s ago`` / ``reading health 120/990`` for the summary line."""
        if self.reading is not None:
            return f"reading health {self.reading[0]}/{self.reading[1]}"
        if self.read_at is None:
            return "health: servers with a live pane only"
        return f"health read {time.monotonic() - self.read_at:.0f}s ago"


def rank(row: Mapping[str, Any]) -> int:
    """How bad a row is, for the order of the rows (lower first): unreachable,
    unhealthy, unknown, degraded, disconnected, running, fine."""
    if row["connection"] == "unreachable":
        return 0
    health = row["health"]
    if health in ("unhealthy", "unknown", "degraded"):
        return {"unhealthy": 1, "unknown": 2, "degraded": 3}[health]
    if row["connection"] == "disconnected":
        return 4
    return 5 if row["run_id"] else 6


CONNECTIONS = ("connected", "unreachable", "disconnected")
HEALTHS = ("healthy", "degraded", "unhealthy", "unknown")


def _counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = {key: 0 for key in (*CONNECTIONS, *HEALTHS, "not read", "running")}
    for row in rows:
        counts[row["connection"]] += 1
        counts[row["health"] or "not read"] += 1
        counts["running"] += row["run_id"] is not None
    return counts


def summary(rows: Sequence[Mapping[str, Any]], health_status: str | None = None) -> list[str]:
    """The two count lines: connections and runs, then health."""
    counts = _counts(rows)
    return [
        f"{len(rows)} servers: {_said(counts, CONNECTIONS)}; {counts['running']} running",
        f"health: {_said(counts, (*HEALTHS, 'not read'))}"
        + (f" ({health_status})" if health_status else ""),
    ]


def _said(counts: Mapping[str, int], keys: Sequence[str]) -> str:
    return ", ".join(f"{counts[k]} {k}" for k in keys if counts[k]) or "none"


def _table(header: Sequence[str], rows: list[list[str]], width: int) -> list[str]:
    """Rows under a header, each column as wide as its widest cell."""
    widths = [max(len(r[i]) for r in [list(header), *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()[:width]

    return [
        line(header),
        "-" * min(width, sum(widths) + len(widths) - 1),
        *(line(r) for r in rows),
    ]


def _tag_lines(rows: Sequence[Mapping[str, Any]], width: int, room: int) -> list[str]:
    """Per tag (a server counts under each of its tags): how many, and how many of
    them are in trouble; tags in trouble first. Nothing when no server has a tag."""
    if not any(row.get("tags") for row in rows):
        return []
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        for tag in row.get("tags") or ["(no tag)"]:
            groups.setdefault(tag, []).append(row)
    table = []
    for tag, members in groups.items():
        c = _counts(members)
        trouble = c["unreachable"] + c["unhealthy"] + c["unknown"] + c["degraded"]
        table.append((-trouble, tag, members, c))
    table.sort(key=lambda t: (t[0], t[1]))
    cells = [
        [
            visible(tag)[:24],
            str(len(members)),
            str(c["connected"]),
            str(c["unreachable"]),
            str(c["disconnected"]),
            str(c["healthy"]),
            str(c["degraded"] + c["unhealthy"] + c["unknown"]),
            str(c["running"]),
        ]
        for _, tag, members, c in table
    ]
    shown = cells if len(cells) <= room else cells[: max(1, room - 1)]
    header = ("TAG", "SERVERS", "CONNECTED", "UNREACHABLE", "DISCONN.", "HEALTHY", "NOT OK", "RUN")
    lines = _table(header, shown, width)
    if len(shown) < len(cells):
        lines.append(f"… {len(cells) - len(shown)} more tags")
    return [*lines, ""]


def render(
    snap: dict[str, Any],
    width: int = 100,
    height: int | None = None,
    health_status: str | None = None,
) -> str:
    """The snapshot as plain text for a terminal (the orchestrator window): the counts,
    then per tag, then the servers, those in trouble first (unreachable, unhealthy,
    unknown, degraded, disconnected, running, fine). With ``height`` it fits that many
    lines: the servers cut there, with how many more are not shown.

    What a server reported is shown with its control characters made visible. Each
    column is as wide as its widest cell (a long ``unknown (reason)`` does not push
    the columns after it out of line), cells cut at their column's limit."""
    rows = sorted(snap["servers"], key=lambda r: (rank(r), r["server"]))
    lines = [*summary(rows, health_status), ""]
    if not rows:
        lines.append("(no servers: sane server add NAME --host H)")
        return "\n".join(lines) + "\n"
    room = None if height is None else max(3, height - len(lines))
    lines += _tag_lines(rows, width, room // 3 if room is not None else len(rows))
    limits = (14, 22, 13, 40, 10, 14)
    cells = []
    for row in rows:
        health = visible(row["health"] or "-")
        if row["health"] == "unknown" and row["health_reason"]:
            health = f"unknown ({visible(row['health_reason'])})"
        texts = (
            visible(row["server"]),
            visible(row["host"]),
            row["connection"],
            health,
            visible(row["version"] or "-"),
            row["run_id"] or "-",
        )
        cells.append(
            [
                cell if len(cell) <= limit else cell[: limit - 1] + "…"
                for cell, limit in zip(texts, limits, strict=True)
            ]
        )
    left = None if height is None else max(1, height - len(lines) - 3)
    shown = cells if left is None or len(cells) <= left else cells[:left]
    header = ("SERVER", "HOST", "CONNECTION", "HEALTH", "VERSION", "RUN")
    lines += _table(header, shown, width)
    if len(shown) < len(cells):
        hidden = rows[len(shown) :]
        fine = sum(rank(r) == 6 for r in hidden)
        lines.append(
            f"… {len(hidden)} more ({fine} connected and fine); all of them: sane watch --once"
        )
    return "\n".join(line[:width] for line in lines) + "\n"
