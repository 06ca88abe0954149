"""``sane fleet run``: one command on many servers, in parallel, bounded."""

from __future__ import annotations

import click

from sane.cli.build import command

EPILOG = """\b
Example:
  $ sane fleet run 'uptime -p' --tag web --max-parallel 2
  {"ok": true, "schema_version": 1, "status": "partial", "command": "uptime -p",
   "counts": {"total": 2, "ok": 1, "completed": 1, "unreachable": 1, ...},
   "results": [{"server": "web1", "status": "completed", "exit_code": 0,
   "output": "up 3 days\\n", "ok": true, "started_ms": 0.4, "finished_ms": 12.9, ...},
   {"server": "web2", "status": "unreachable", "ok": false,
   "error": {"code": "connection_refused", ...}, ...}], "duration_ms": 13.1}

\b
Exit status 0 only when every server ran the command and it exited 0; 1 otherwise.
--stream prints JSON lines as it goes (started, output, finished events), then the
same final document.
"""


PUT_EPILOG = """\b
Example (the second time, every server already has the file):
  $ sane fleet put ./app.conf /tmp/app.conf --all
  {"ok": true, "schema_version": 1, "status": "completed", "sha256": "37107a4e...",
   "bytes": 12, "results": [{"server": "s1", "ok": true, "error": null,
   "path": "/tmp/app.conf", "pane": "%2", "bytes": 12, "sha256": "37107a4e...",
   "mode": "0644", "action": "created", "backup_path": null, "duration_ms": 171.487}, ...]}
  $ sane fleet put ./app.conf /tmp/app.conf --all
  {"ok": true, "schema_version": 1, "status": "completed", ..., "results": [
   {"server": "s1", "ok": true, "error": null, "action": "unchanged", ...}, ...]}
"""

DETECT_EPILOG = """\b
Example:
  $ sane fleet detect --servers s1 --jq '.results[0] | {server, ok, os, distro}'
  {"server": "s1", "ok": true, "os": "Linux", "distro": {"id": "debian",
   "version_id": "12", "name": "Debian GNU/Linux 12 (bookworm)"}}
"""


@click.group("fleet", epilog=EPILOG)
def fleet_group() -> None:
    """Work on many servers at once."""


# Options, defaults and help: the command table (sane.tools, rows fleet_*).
fleet_group.add_command(command("fleet run", EPILOG))
fleet_group.add_command(command("fleet put", PUT_EPILOG))
fleet_group.add_command(command("fleet detect", DETECT_EPILOG))
