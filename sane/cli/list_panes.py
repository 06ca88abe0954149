"""``sane-list-panes``: the panes of a tmux server as JSON."""

from __future__ import annotations

from sane.cli._output import entry
from sane.cli.build import command

EPILOG = """\b
Example:
  $ sane-list-panes
  {"ok": true, "schema_version": 1, "panes": [{"pane_id": "%0", "session": "sane",
   "window_index": 0, "window_name": "local", "pane_index": 0, "title": "host",
   "current_command": "bash", "cwd": "/root", "width": 200, "height": 50,
   "active": true, "dead": false, "sane_role": "local", "sane_server": null,
   "busy": false, "run_id": null}]}
"""


# Options, defaults and help: the command table (sane.tools, row list_panes).
list_panes_cli = command("list-panes", EPILOG)


main = entry(list_panes_cli)

if __name__ == "__main__":
    main()
