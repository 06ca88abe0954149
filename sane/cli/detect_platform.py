"""``sane-detect-platform``: facts about the host behind a pane."""

from __future__ import annotations

import click

from sane.cli._output import emit, entry, socket_option

EPILOG = """\b
Example:
  $ sane-detect-platform --pane %3
  {"ok": true, "schema_version": 1, "os": "Linux", "kernel_release": "6.1.0-27-amd64",
   "arch": "x86_64", "distro": {"id": "debian", "version_id": "12",
   "name": "Debian GNU/Linux 12 (bookworm)"}, "hostname": "web1", "user": "deploy",
   "uid": 1000, "home": "/home/deploy", "shell": {"path": "/bin/bash", "name": "bash",
   "version": "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)"},
   "package_managers": ["apt-get"], "init_system": "systemd", ...}

\b
A fact the probe cannot see is null, never a guess.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", "-s", "server", default=None, metavar="NAME",
              help="Run through this registered server's ssh pane (connects on demand).")
@click.option("--pane", "-t", default=None, metavar="TARGET",
              help="tmux target pane; default: sane's local pane.")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True)
@socket_option
def detect_platform_cli(
    server: str | None, pane: str | None, timeout: float, socket: str | None
) -> None:
    """Detect the OS, distro, shell, tools and environment of the pane's host."""
    from sane.ops.context import Context
    from sane.ops.detect_platform import detect_platform
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        if server is not None:
            from sane.fleet.panes import resolve_target

            pane = resolve_target(ctx, pane, server)
        result = detect_platform(ctx, pane=pane, timeout=timeout)
    emit(dict(result))


main = entry(detect_platform_cli)

if __name__ == "__main__":
    main()
