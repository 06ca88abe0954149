"""``sane health``: read, set and wait on every server's health.json."""

from __future__ import annotations

import json
from typing import Any

import click

from sane.cli._output import emit
from sane.cli.build import command, group
from sane.errors import InvalidArgument

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


# `sane health` itself, options, defaults and help: the command table (sane.tools,
# rows health and health_wait).
health_group = group("health", EPILOG)


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


health_group.add_command(command("health wait", WAIT_EPILOG))
