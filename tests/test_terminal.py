"""Nothing from a server is interpreted on the operator's terminal (docs/security.md):
rich markup is escaped and control characters are shown, in the live display and the
result tables on a terminal and in ``sane watch``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

from sane.fleet.watch import render
from sane.ops.context import Context
from sane.testing.fleet import register
from sane.visible import markup_safe, visible

from .conftest import read_terminal

# An OSC title, an OSC 8 link, a bell, a CR that hides what came before, a bidi
# override, and rich markup that is not balanced.
HOSTILE = (
    "\x1b]0;pwned-title\x07 \x1b]8;;http://evil/\x07click\x1b]8;;\x07 "
    "[/red] [link=http://evil]x[/link] [bold]loud fake\rcover \u202eabc"
)


def test_visible_and_markup_safe() -> None:
    shown = visible(HOSTILE)
    assert not re.search("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202e]", shown)
    assert "\\x1b]0;pwned-title\\x07" in shown and "\\x0dcover" in shown
    assert "\\u202eabc" in shown and visible("\tx") == "\tx"
    from rich.console import Console
    from rich.text import Text

    console = Console(width=400, color_system=None, record=True)
    console.print(markup_safe("[/red] [bold]x"))  # raised MarkupError before
    assert "[/red] [bold]x" in console.export_text()
    assert isinstance(Text.from_markup(markup_safe(HOSTILE)), Text)


def test_stream_on_a_terminal_shows_server_text_without_interpreting_it(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any
) -> None:
    import pty

    register(sane_ctx.home, ssh_fleet)
    master, slave = pty.openpty()
    command = "printf '%b\\n' " + _sh_quote(
        HOSTILE.replace("\\", "\\\\")
        .replace("\x1b", "\\033")
        .replace("\x07", "\\007")
        .replace("\r", "\\r")
    )
    argv = [
        sys.executable,
        "-m",
        "sane.cli.main",
        "fleet",
        "run",
        "--servers",
        "s1",
        "--stream",
        command,
    ]
    proc = subprocess.Popen(
        argv,
        env={**cli_env, "TERM": "xterm", "COLUMNS": "300"},
        stdout=slave,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    code, received = read_terminal(master, proc, 60)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    raw = received.decode("utf-8", "replace")
    assert code == 0, raw + stderr  # `[/red]` crashed it with internal_error before
    assert "\x1b]0;" not in raw and "\x1b]8;" not in raw and "\x07" not in raw
    assert "\u202e" not in raw  # the live display and the result's table (sane.cli.human)
    # (sane's output cleaning already drops escape sequences; what is left is shown:)
    assert "[/red] [link=http://evil]x[/link] [bold]loud fake\\x0dcover \\u202eabc" in raw
    piped = subprocess.run(argv, env=cli_env, capture_output=True, text=True, check=False)
    doc = json.loads(piped.stdout.splitlines()[-1])
    assert "fake\rcover \u202eabc" in doc["results"][0]["output"]  # the JSON: exact


def test_watch_shows_health_fields_with_escapes_made_visible() -> None:
    snap = {
        "servers": [
            {
                "server": "s1",
                "host": "127.0.0.1:22",
                "connection": "connected",
                "health": "unknown",
                "health_reason": "\x1b]0;title\x07bad",
                "version": "\x1b[2J1.0",
                "run_id": None,
            }
        ]
    }
    text = render(snap)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;title" in text and "\\x1b[2J" in text


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_watch_columns_stay_aligned_when_health_is_unknown() -> None:
    """An ``unknown (reason)`` wider than the HEALTH column pushed VERSION and RUN out
    of line on that row only (issue #19)."""
    rows = [
        ("s1", "healthy", None, "1.0", None),
        ("s2", "unknown", "missing", None, "r1"),
        ("web3", "unknown", "ssh: connect to host 10.0.0.3 port 22: refused", None, None),
    ]
    snap = {
        "servers": [
            {
                "server": name,
                "host": "127.0.0.1:22",
                "connection": "connected",
                "health": health,
                "health_reason": reason,
                "version": version,
                "run_id": run,
            }
            for name, health, reason, version, run in rows
        ]
    }
    lines = render(snap).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("SERVER"))
    column = lines[header].index("VERSION")
    versions = {line.split()[0]: line[column : column + 3] for line in lines[header + 2 :]}
    assert versions == {"s1": "1.0", "s2": "-  ", "web3": "-  "}, lines
