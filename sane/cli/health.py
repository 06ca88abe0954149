"""``sane health``: read, set and wait on every server's health.json."""

from __future__ import annotations

from sane.cli.build import command, group

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


health_group.add_command(command("health set", SET_EPILOG))
health_group.add_command(command("health wait", WAIT_EPILOG))
