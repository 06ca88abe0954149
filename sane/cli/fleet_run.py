"""``sane fleet run``: one command on many servers, in parallel, bounded."""

from __future__ import annotations

import click

from sane.cli._output import emit, socket_option
from sane.cli._select import selected_servers, split_names
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


# Options, defaults and help: the command table (sane.tools, row fleet_run).
fleet_group.add_command(command("fleet run", EPILOG))


@fleet_group.command("put", epilog=PUT_EPILOG)
@click.argument("local_file", type=click.Path(exists=True))
@click.argument("remote_path")
@click.option("--servers", default=None, metavar="A,B,...")
@click.option("--tag", default=None)
@click.option("--all", "all_servers", is_flag=True)
@click.option("--mode", default=None, metavar="OCTAL")
@click.option("--parents", is_flag=True)
@click.option("--max-parallel", type=click.IntRange(min=1), default=5, show_default=True)
@socket_option
def put(local_file: str, remote_path: str, servers: str | None, tag: str | None,
        all_servers: bool, mode: str | None, parents: bool, max_parallel: int,
        socket: str | None) -> None:
    """Copy LOCAL_FILE to REMOTE_PATH (absolute, or ~/ for each login's home) on many
    servers (skipping those that already have the same sha256). Exit 0 only when every
    server has the file."""
    from sane.bounded import read_file
    from sane.cli.create_file import _mode
    from sane.fleet.run import fleet_put
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    data = read_file(local_file, "local_file")
    selected = selected_servers(split_names(servers), tag, all_servers)
    with Context(TmuxServer.from_env(socket)) as ctx:
        result = fleet_put(ctx, selected, remote_path, data, _mode(mode), parents, max_parallel)
    emit(result, 0 if result["status"] == "completed" else 1)


@fleet_group.command("detect", epilog=DETECT_EPILOG)
@click.option("--servers", default=None, metavar="A,B,...")
@click.option("--tag", default=None)
@click.option("--all", "all_servers", is_flag=True)
@click.option("--max-parallel", type=click.IntRange(min=1), default=5, show_default=True)
@socket_option
def detect(servers: str | None, tag: str | None, all_servers: bool, max_parallel: int,
           socket: str | None) -> None:
    """The platform of every selected server (one probe each, in parallel)."""
    from sane.fleet.run import fleet_detect
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    selected = selected_servers(split_names(servers), tag, all_servers)
    with Context(TmuxServer.from_env(socket)) as ctx:
        result = fleet_detect(ctx, selected, max_parallel)
    emit(result, 0 if result["status"] == "completed" else 1)
