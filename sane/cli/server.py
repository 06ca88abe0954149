"""``sane server ...``: the fleet registry (servers.json)."""

from __future__ import annotations

import click

from sane.cli._output import emit, socket_option
from sane.errors import InvalidArgument

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

SHOW_EPILOG = """\b
Example:
  $ sane server show s1
  {"ok": true, "schema_version": 1, "server": {"name": "s1", "host": "127.0.0.1",
   "port": 41935, "user": "root",
   "identity_file": "/tmp/sane-fleet-wt41c6sb/client/id_ed25519", "extra_identity_files": [],
   "ssh_options": {"UserKnownHostsFile": "/tmp/sane-fleet-wt41c6sb/known_hosts"},
   "tags": ["web"], "health_path": "~/.sane/health.json"}}
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
    """Add, list, show, remove and import servers (servers.json in $SANE_HOME)."""


def _options(pairs: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--ssh-option takes KEY=VALUE, not {pair!r}", option=pair)
        options[key] = value
    return options


@server_group.command("add", epilog=ADD_EPILOG)
@click.argument("name")
@click.option("--host", required=True, help="Hostname or address.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Default: ssh's own (your ssh config's Port for that host, else 22).")
@click.option("--user", default=None)
@click.option("--identity", default=None, help="Private key file (kept as a path, never read).")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE")
@click.option("--tag", "tags", multiple=True)
@click.option("--health-path", default="~/.sane/health.json", show_default=True)
@click.option("--replace", is_flag=True, help="Overwrite an existing server of that name.")
def add(name: str, host: str, port: int | None, user: str | None, identity: str | None,
        ssh_options: tuple[str, ...], tags: tuple[str, ...], health_path: str,
        replace: bool) -> None:
    """Add server NAME to the registry."""
    import os

    from pydantic import ValidationError

    from sane.fleet.registry import Registry, Server
    from sane.fleet.ssh import entry_warnings, resolve

    try:
        server = Server(
            name=name, host=host, port=port, user=user,
            identity_file=os.path.abspath(os.path.expanduser(identity)) if identity else None,
            ssh_options=_options(ssh_options), tags=list(tags), health_path=health_path,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidArgument(f"{field}: {first['msg']}", field=field) from None
    if server.ssh_options:
        resolve(server)  # ssh itself must accept the option values
    Registry().add(server, replace=replace)
    emit({"server": server.model_dump(mode="json"), "warnings": entry_warnings(server)})


@server_group.command("list", epilog=LIST_EPILOG)
@click.option("--tag", default=None, help="Only servers with this tag.")
@socket_option
def list_servers(tag: str | None, socket: str | None) -> None:
    """List the registered servers, with the state of their ssh pane (`connection`) and
    what `sane health` last found (`health_history`)."""
    from sane.fleet.health import read_history
    from sane.fleet.panes import connection_states
    from sane.fleet.registry import Registry
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    registry = Registry()
    servers = [s for s in registry.servers() if tag is None or tag in s.tags]
    history = read_history(registry.home)
    with Context(TmuxServer.from_env(socket)) as ctx:
        states = connection_states(ctx)
    emit({"servers": [{**s.model_dump(mode="json"),
                       "connection": states.get(s.name, "disconnected"),
                       "health_history": history.get(s.name)} for s in servers]})


@server_group.command("show", epilog=SHOW_EPILOG)
@click.argument("name")
def show(name: str) -> None:
    """Show one server."""
    from sane.fleet.registry import Registry

    emit({"server": Registry().get(name).model_dump(mode="json")})


@server_group.command("remove", epilog=REMOVE_EPILOG)
@click.argument("name")
def remove(name: str) -> None:
    """Remove server NAME from the registry."""
    from sane.fleet.registry import Registry

    emit({"removed": Registry().remove(name).model_dump(mode="json")})


@server_group.command("import", epilog=IMPORT_EPILOG)
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["ssh-config", "ansible"]), required=True)
@click.option("--replace", is_flag=True, help="Overwrite servers that already exist.")
def import_servers(source: str, fmt: str, replace: bool) -> None:
    """Import the hosts of an OpenSSH config or an Ansible inventory (INI or YAML)."""
    from sane.errors import ServerExists
    from sane.fleet.importers import from_ansible_inventory, from_ssh_config
    from sane.fleet.registry import Registry

    imported = (from_ssh_config if fmt == "ssh-config" else from_ansible_inventory)(source)
    added, skipped = [], list(imported.skipped)
    with Registry().locked() as registry:
        names = {s.name for s in registry.servers}
        for server in imported.servers:
            if server.name in names and not replace:
                skipped.append({"name": server.name, "reason": ServerExists.code})
                continue
            registry.servers = [s for s in registry.servers if s.name != server.name]
            registry.servers.append(server)
            added.append(server.model_dump(mode="json"))
    emit({"imported": added, "skipped": skipped})


def _register_test() -> None:
    """`sane server test` lives with the connection commands (sane.cli.fleet)."""
    from sane.cli.fleet import test

    server_group.add_command(test)


_register_test()
