"""``sane-detect-platform``: facts about the host behind a pane."""

from __future__ import annotations

from sane.cli._output import entry
from sane.cli.build import command

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


# Options, defaults and help: the command table (sane.tools, row detect_platform).
detect_platform_cli = command("detect-platform", EPILOG)


main = entry(detect_platform_cli)

if __name__ == "__main__":
    main()
