"""A snapshot of the fleet for ``sane watch``: servers, connection, health, runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sane.fleet.health import check
from sane.fleet.panes import server_panes
from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.ops.holder import run_of
from sane.ops.runs import pane_busy


def snapshot(ctx: Context, with_health: bool = True) -> dict[str, Any]:
    """One row per registered server: pane, connection, current run, health."""
    servers = Registry(ctx.home).servers()
    panes = server_panes(ctx)
    health = (
        {r["server"]: r for r in check(ctx.home, servers)["servers"]}
        if (with_health and servers)
        else {}
    )
    rows = []
    for server in servers:
        state = panes.get(server.name)
        busy = state is not None and pane_busy(ctx, state.run_id)
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
                "run_id": run_of(state.run_id) if busy and state else None,
                "health": report["status"] if report else None,
                "health_reason": report["reason"] if report else None,
                "version": (report.get("data") or {}).get("version") if report else None,
            }
        )
    return {"servers": rows}


def render(snap: dict[str, Any], width: int = 100) -> str:
    """The snapshot as a plain-text table for a terminal (the orchestrator window);
    what a server reported is shown with its control characters made visible. Each
    column is as wide as its widest cell (a long ``unknown (reason)`` no longer
    pushes the columns after it out of line), cells cut at their column's limit."""
    from sane.visible import visible

    limits = (14, 22, 13, 40, 10, 14)
    header = ("SERVER", "HOST", "CONNECTION", "HEALTH", "VERSION", "RUN")
    rows = []
    for row in snap["servers"]:
        health = visible(row["health"] or "-")
        if row["health"] == "unknown" and row["health_reason"]:
            health = f"unknown ({visible(row['health_reason'])})"
        cells = (
            visible(row["server"]),
            visible(row["host"]),
            row["connection"],
            health,
            visible(row["version"] or "-"),
            row["run_id"] or "-",
        )
        rows.append(
            [
                cell if len(cell) <= limit else cell[: limit - 1] + "…"
                for cell, limit in zip(cells, limits, strict=True)
            ]
        )
    widths = [max(len(r[i]) for r in [list(header), *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(header), "-" * min(width, sum(widths) + len(widths) - 1)]
    lines.extend(line(r) for r in rows)
    if not snap["servers"]:
        lines.append("(no servers: sane server add NAME --host H)")
    return "\n".join(lines) + "\n"
