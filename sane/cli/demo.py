"""``sane demo``: the README's main job; ``sane demo fleet start|stop`` for examples."""

from __future__ import annotations

import click

from sane.cli._output import emit

EPILOG = """\b
Example (the narrative goes to stderr; stdout gets one JSON summary):
  $ sane demo
  == 1. three real OpenSSH servers on 127.0.0.1, run as you
  ...
  == 5. deploy v2.0.0: server2's migration fails, server2 is rolled back
    [server2] rolled_back after step:migrate failed (migrate run exited 3: ...)
  ...
  {"ok": true, "schema_version": 1, "demo_ok": true, "checks": [{"check":
   "all three panes connected (host keys checked)", "ok": true, ...}, ...], ...}

\b
Exit status 0 when every check of the story held, 1 otherwise.
"""


@click.group("demo", invoke_without_command=True, epilog=EPILOG)
@click.option(
    "--keep", is_flag=True, help="Leave the fleet and the tmux session running to look around."
)
@click.option(
    "--containers",
    is_flag=True,
    help="On a mixed fleet of containers (Debian + OpenSSH, busybox ash + Dropbear)"
    " through Docker or podman; see docs/containers.md.",
)
@click.pass_context
def demo_group(ctx: click.Context, keep: bool, containers: bool) -> None:
    """Run the whole story on a throw-away local 3-server fleet (real sshd, no root)."""
    if ctx.invoked_subcommand is not None:
        return
    from sane.demo.scenario import run_demo

    result = run_demo(lambda text: click.echo(text, err=True), keep, containers)
    emit(result, 0 if result["demo_ok"] else 1)


START_EPILOG = """\b
Example:
  $ sane demo fleet start --dir /tmp/capd-fleet --servers 2
  {"ok": true, "schema_version": 1, "directory": "/tmp/capd-fleet", "servers": [
   {"name": "server1", "host": "127.0.0.1", "port": 44893, "user": "root",
   "identity_file": "/tmp/capd-fleet/client/id_ed25519", "extra_identity_files": [],
   "ssh_options": {"UserKnownHostsFile": "/tmp/capd-fleet/known_hosts"},
   "tags": ["demo"], "health_path": "~/.sane/health.json",
   "home": "/tmp/capd-fleet/server1/home"}, {"name": "server2", ...}]}
"""

STOP_EPILOG = """\b
Example:
  $ sane demo fleet stop --dir /tmp/capd-fleet
  {"ok": true, "schema_version": 1, "stopped": ["server1", "server2"]}
"""


@demo_group.group("fleet", epilog=START_EPILOG)
def fleet() -> None:
    """A local fleet of real sshd servers for examples and scripts."""


@fleet.command("start", epilog=START_EPILOG)
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="Where the fleet keeps its keys, configs and server homes.",
)
@click.option("--servers", "count", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--prefix", default="server", show_default=True, help="Names are PREFIX1..N.")
def fleet_start(directory: str, count: int, prefix: str) -> None:
    """Start COUNT sshd servers on 127.0.0.1 and register them in servers.json."""
    from pathlib import Path

    from sane.demo import fleet as demo_fleet
    from sane.fleet.registry import Registry

    base = Path(directory).resolve()
    servers = demo_fleet.start(base, [f"{prefix}{i}" for i in range(1, count + 1)])
    registry = Registry()
    for server in servers:
        registry.add(server, replace=True)
    homes = demo_fleet.homes(base)
    emit(
        {
            "directory": str(base),
            "servers": [{**s.model_dump(mode="json"), "home": str(homes[s.name])} for s in servers],
        }
    )


@fleet.command("stop", epilog=STOP_EPILOG)
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option("--keep-registry", is_flag=True, help="Leave the servers in servers.json.")
def fleet_stop(directory: str, keep_registry: bool) -> None:
    """Stop the fleet under --dir, remove its files and (by default) its registry entries."""
    from pathlib import Path

    from sane.demo import fleet as demo_fleet
    from sane.fleet.registry import Registry

    base = Path(directory).resolve()
    names = list(demo_fleet.homes(base))
    stopped = demo_fleet.stop(base)
    if not keep_registry:
        registry = Registry()
        known = {s.name for s in registry.servers()}
        for name in names:
            if name in known:
                registry.remove(name)
    emit({"stopped": stopped})
