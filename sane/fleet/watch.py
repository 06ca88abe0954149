"""A snapshot of the fleet for ``sane watch``: servers, connection, health, runs."""

from __future__ import annotations

from typing import Any

from sane.fleet.health import check
from sane.fleet.panes import server_panes
from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.ops.runs import pane_busy


def snapshot(ctx: Context, with_health: bool = True) -> dict[str, Any]:
    """One row per registered server: pane, connection, current run, health."""
    servers = Registry(ctx.home).servers()
    panes = server_panes(ctx)
    health = {r["server"]: r for r in check(ctx.home, servers)["servers"]} if (
        with_health and servers) else {}
    rows = []
    for server in servers:
        state = panes.get(server.name)
        busy = state is not None and pane_busy(ctx, state.run_id)
        report = health.get(server.name)
        rows.append({
            "server": server.name,
            "host": f"{server.host}:{server.port}",
            "tags": server.tags,
            "pane": state.pane_id if state else None,
            "connection": "disconnected" if state is None else
                          "unreachable" if state.dead else "connected",
            "run_id": state.run_id.partition(":")[0] if busy and state and state.run_id
                      else None,
            "health": report["status"] if report else None,
            "health_reason": report["reason"] if report else None,
            "version": (report.get("data") or {}).get("version") if report else None,
        })
    return {"servers": rows}


def render(snap: dict[str, Any], width: int = 100) -> str:
    """The snapshot as a plain-text table for a terminal (the orchestrator window);
    what a server reported is shown with its control characters made visible."""
    from sane.visible import visible

    header = f"{'SERVER':14} {'HOST':22} {'CONNECTION':13} {'HEALTH':10} {'VERSION':10} RUN"
    lines = [header, "-" * min(width, len(header) + 14)]
    for row in snap["servers"]:
        health = visible(row["health"] or "-")
        if row["health"] == "unknown" and row["health_reason"]:
            health = f"unknown ({visible(row['health_reason'])[:20]})"
        version = visible(row["version"] or "-")[:10]
        lines.append(f"{row['server'][:14]:14} {row['host'][:22]:22} {row['connection']:13} "
                     f"{health:10} {version:10} {row['run_id'] or '-'}")
    if not snap["servers"]:
        lines.append("(no servers: sane server add NAME --host H)")
    return "\n".join(lines) + "\n"
