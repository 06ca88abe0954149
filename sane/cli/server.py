"""``sane server ...``: the fleet registry (servers.json)."""

from __future__ import annotations

import click

from sane.cli.build import command

ADD_EPILOG = """\b
Example:
  $ sane server add web1 --host 10.0.0.11 --user deploy --identity ~/.ssh/id_ed25519 \\
      --tag web --ssh-option ConnectTimeout=5
  {"ok": true, "schema_version": 1, "server": {"name": "web1", "host": "10.0.0.11",
   "port": 22, "user": "deploy", "identity_file": "/home/me/.ssh/id_ed25519",
   "extra_identity_files": [],
   "ssh_options": {"ConnectTimeout": "5"}, "tags": ["web"],
   "health_path": "~/.sane/health.json"}}
"""


LIST_EPILOG = """\b
Example:
  $ sane server list --tag web
  {"ok": true, "schema_version": 1, "servers": [{"name": "s1", "host": "127.0.0.1",
   "port": 41935, "user": "root",
   "identity_file": "/tmp/sane-fleet-wt41c6sb/client/id_ed25519", "extra_identity_files": [],
   "ssh_options": {"UserKnownHostsFile": "/tmp/sane-fleet-wt41c6sb/known_hosts"},
   "tags": ["web"], "health_path": "~/.sane/health.json", "connection": "connected",
   "health_history": {"last_status": "healthy", "last_ok_at": "2026-11-23T19:28:21+00:00",
   "failure_streak": 0, "read_latency_ms": 16.5, "checked_at": "2026-11-23T19:28:21+00:00"}},
   ...]}

\b
connection: connected (its ssh pane is alive), unreachable (the pane's ssh ended;
the next run reconnects), disconnected (no pane yet). health_history: what the last
`sane health` found (null before the first one).
"""

TEST_EPILOG = """\b
Example:
  $ sane server test s2
  {"ok": true, "schema_version": 1, "server": "s2", "reachable": true, "latency_ms": 36.232}

\b
A failure is the classified error: auth_failed, host_key_unknown, connection_refused,
host_unreachable, timeout ... (exit 5).
"""

SHOW_EPILOG = """\b
Example:
  $ sane server show s1
  {"ok": true, "schema_version": 1, "server": {"name": "s1", "host": "127.0.0.1",
   "port": 41935, "user": "root",
   "identity_file": "/tmp/sane-fleet-wt41c6sb/client/id_ed25519", "extra_identity_files": [],
   "ssh_options": {"UserKnownHostsFile": "/tmp/sane-fleet-wt41c6sb/known_hosts"},
   "tags": ["web"], "health_path": "~/.sane/health.json"}}
"""

PANE_EPILOG = """\b
Example:
  $ sane server pane s1 --select
  {"ok": true, "schema_version": 1, "server": "s1", "connection": "connected",
   "pane": "%2", "session": "sane", "window": "@2", "window_index": 2,
   "window_name": "s1", "window_panes": 2, "pane_index": 0, "target": "sane:2.0",
   "selected": true, "attach": "tmux -L work attach-session -t %2",
   "switch": "tmux -L work switch-client -t %2"}

\b
Found by the pane's own @sane_server option, whatever the window layout. A server
without a pane is pane_not_found (exit 3): `sane connect NAME` opens one. A person
runs `attach` from a shell, or `switch` from inside tmux.
"""

REMOVE_EPILOG = """\b
Example:
  $ sane server remove db1
  {"ok": true, "schema_version": 1, "removed": {"name": "db1", "host": "10.0.0.21",
   "port": 2222, "user": "deploy", "identity_file": null,
   "extra_identity_files": [], "ssh_options": {}, "tags": [],
   "health_path": "~/.sane/health.json"}}
"""

IMPORT_EPILOG = """\b
Example (an ssh_config with `Host db1 / HostName 10.0.0.21 / User deploy / Port 2222`):
  $ sane server import --format ssh-config ~/.ssh/config
  {"ok": true, "schema_version": 1, "imported": [{"name": "db1", "host": "10.0.0.21",
   "port": 2222, "user": "deploy", "identity_file": null,
   "extra_identity_files": [], "ssh_options": {}, "tags": [],
   "health_path": "~/.sane/health.json"}], "skipped": []}
"""


@click.group("server", epilog=SHOW_EPILOG)
def server_group() -> None:
    """Add, list, show, remove and import servers (servers.json in $SANE_HOME); find a
    server's pane."""


# Options, defaults and help: the command table (sane.tools, rows server_*).
server_group.add_command(command("server add", ADD_EPILOG))
server_group.add_command(command("server list", LIST_EPILOG))
server_group.add_command(command("server test", TEST_EPILOG))
server_group.add_command(command("server show", SHOW_EPILOG))
server_group.add_command(command("server pane", PANE_EPILOG))
server_group.add_command(command("server remove", REMOVE_EPILOG))
server_group.add_command(command("server import", IMPORT_EPILOG))
