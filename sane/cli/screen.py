"""``sane read-screen | send-keys | wait-for-text``: drive full-screen programs, REPLs
and panes sane did not start (the MCP tools of the same names)."""

from __future__ import annotations

from sane.cli.build import command

READ_EPILOG = """\b
Example (a Python REPL a run left `running` in pane %0):
  $ sane read-screen --pane %0 --lines 3
  {"ok": true, "schema_version": 1, "pane": "%0", "text": ">>> 6 * 7\\n42\\n>>> ",
   "cursor_x": 4, "cursor_y": 33, "width": 200, "height": 50, "in_mode": false}
"""

SEND_EPILOG = """\b
Example:
  $ sane send-keys --pane %0 --text '6 * 7' --enter
  {"ok": true, "schema_version": 1, "pane": "%0", "sent_keys": [], "sent_text_chars": 5,
   "enter": true}
  $ sane send-keys --pane %0 --key C-d
  {"ok": true, "schema_version": 1, "pane": "%0", "sent_keys": ["C-d"],
   "sent_text_chars": 0, "enter": false}
"""

WAIT_EPILOG = """\b
Example:
  $ sane wait-for-text '^42$' --pane %0 --lines 3 --timeout 5
  {"ok": true, "schema_version": 1, "pane": "%0", "matched": true, "match": "42",
   "text": ">>> 6 * 7\\n42\\n>>> ", "waited_ms": 3.642}

\b
Not matched by --timeout: the same document with "matched": false and the screen as
it was, exit 4.
"""

# Options, defaults and help: the command table (sane.tools, rows read_screen,
# send_keys, wait_for_text).
read_screen_cli = command("read-screen", READ_EPILOG)
send_keys_cli = command("send-keys", SEND_EPILOG)
wait_for_text_cli = command("wait-for-text", WAIT_EPILOG)
