"""``sane health``: read, set and wait on every server's health.json."""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

import click

from sane.cli._output import emit
from sane.cli._select import selected_servers, split_names
from sane.errors import EXIT_TIMEOUT, InvalidArgument

EPILOG = """\b
Example:
  $ sane health --query .version
  {"ok": true, "schema_version": 1, "servers": [{"server": "web1", "status": "healthy",
   "reason": null, "data": {"status": "healthy", "version": "1.4.2", ...},
   "latency_ms": 6.1, "query": "1.4.2", "history": {"last_status": "healthy",
   "last_ok_at": "2026-11-23T13:20:11+00:00", "failure_streak": 0, ...}},
   {"server": "web2", "status": "unknown", "reason": "missing", ...}],
   "counts": {"healthy": 1, "degraded": 0, "unhealthy": 0, "unknown": 1},
   "all_healthy": false}
"""


@click.group("health", invoke_without_command=True, epilog=EPILOG)
@click.option("--servers", default=None, metavar="A,B,...")
@click.option("--tag", default=None)
@click.option("--query", "query_expr", default=None, metavar="JQ",
              help="A jq expression evaluated on each server's health document.")
@click.pass_context
def health_group(ctx: click.Context, servers: str | None, tag: str | None,
                 query_expr: str | None) -> None:
    """Read every selected server's health.json in parallel (unknown when missing or
    malformed, with the reason), record history, and summarise."""
    if ctx.invoked_subcommand is not None:
        return
    from sane.fleet.health import check
    from sane.paths import sane_home

    emit(check(sane_home(), selected_servers(split_names(servers), tag, False), query_expr))


SET_EPILOG = """\b
Example:
  $ sane health set --server s2 --status healthy --field version=1.4.2
  {"ok": true, "schema_version": 1, "server": "s2", "health": {"status": "healthy",
   "version": "1.4.2", "checked_at": "2026-11-23T16:49:31+00:00"}}
"""

WAIT_EPILOG = """\b
Example:
  $ sane health wait --until '.version == "1.4.2"' --timeout 10
  {"ok": true, "schema_version": 1, "met": true, "until": ".version == \\"1.4.2\\"",
   "mode": "all", "waiting_for": [], "servers": [{"server": "s1", "status": "healthy",
   "reason": null, "data": {"status": "healthy", "version": "1.4.2", ...}, ...}, ...]}

\b
Not met by --timeout: the same document with "met": false and the servers still
waited for in "waiting_for", exit 4.
"""


@health_group.command("set", epilog=SET_EPILOG)
@click.option("--server", "name", required=True)
@click.option("--status", type=click.Choice(["healthy", "degraded", "unhealthy"]), required=True)
@click.option("--field", "fields", multiple=True, metavar="KEY=VALUE",
              help="Extra fields, as strings (version=1.2 is the string \"1.2\").")
@click.option("--json-field", "json_fields", multiple=True, metavar="KEY=JSON",
              help="Extra fields whose VALUE is JSON (replicas=3 is the number 3).")
def set_cmd(name: str, status: str, fields: tuple[str, ...],
            json_fields: tuple[str, ...]) -> None:
    """Write a server's health.json (atomically, on the server)."""
    from sane.fleet.health import set_health
    from sane.fleet.registry import Registry

    values: dict[str, Any] = {}
    for option, pairs in (("--field", fields), ("--json-field", json_fields)):
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            if not sep or not key:
                raise InvalidArgument(f"{option} takes KEY=VALUE, not {pair!r}", field=pair)
            if key in values:
                raise InvalidArgument(f"field {key!r} is given twice", field=key)
            if option == "--field":
                values[key] = raw
                continue
            try:
                values[key] = json.loads(raw)
            except ValueError as exc:
                raise InvalidArgument(f"--json-field {key}: not JSON ({exc}): {raw!r} (a "
                                      "string is --field, or quoted JSON)", field=key) from None
    emit({"server": name, "health": set_health(Registry().get(name), status, values)})


@health_group.command("wait", epilog=WAIT_EPILOG)
@click.option("--until", "until", required=True, metavar="JQ",
              help="Condition per server, e.g. '.status == \"healthy\"'.")
@click.option("--any", "mode", flag_value="any", help="Stop when one server meets it.")
@click.option("--all", "mode", flag_value="all", default=True, help="Wait for all (default).")
@click.option("--servers", default=None, metavar="A,B,...")
@click.option("--tag", default=None)
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True)
@click.option("--interval", type=click.FloatRange(min=0.05), default=2.0, show_default=True)
@click.option("--stream", is_flag=True, help="JSON lines: an event per status change.")
def wait_cmd(until: str, mode: Literal["all", "any"], servers: str | None, tag: str | None,
             timeout: float, interval: float, stream: bool) -> None:
    """Poll health until the condition holds; exit 0 when met, 4 on timeout."""
    from sane.fleet.health import wait
    from sane.paths import sane_home

    def on_event(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    selected = selected_servers(split_names(servers), tag, False)
    result = wait(sane_home(), selected, until, mode, timeout, interval,
                  on_event if stream else None)
    emit(result, 0 if result["met"] else EXIT_TIMEOUT)
