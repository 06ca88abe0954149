"""``sane up | connect | down``: the orchestrator session."""

from __future__ import annotations

from sane.cli.build import command

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


DOWN_EPILOG = """\b
Example:
  $ sane down s2
  {"ok": true, "schema_version": 1, "closed": ["s2"]}
"""


# Options, defaults and help: the command table (sane.tools, rows connect and down;
# `up` is connect's other name).
connect = command("connect", CONNECT_EPILOG)
up = command("up", CONNECT_EPILOG)
down = command("down", DOWN_EPILOG)
