"""A person at a terminal gets tables and a summary; a pipe gets the JSON contract.

The commands run as processes on a real pseudo-terminal (``os.openpty``, a 160x50
window), against real sshd servers, and again through a pipe: the pipe's document is
the schema's, one line, exactly as before human output existed."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

from sane.fleet.health import set_health
from sane.schema import validate
from sane.testing.fleet import register
from sane.testing.pytest_plugin import run_process

from .conftest import read_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def on_terminal(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run ``sane ARGV`` with stdout and stderr on a new pty; (exit status, raw text)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sane.cli.main", *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    status, raw = read_terminal(master, proc, timeout)
    return status, raw.decode("utf-8", "replace")


def through_pipe(argv: list[str], env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    proc = run_process([sys.executable, "-m", "sane.cli.main", *argv], env)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return proc.returncode, json.loads(lines[0])


def plain(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


def test_server_list_fleet_run_and_health_are_tables_for_a_person_json_for_a_pipe(
    cli_env: dict[str, str], sane_home: Path, ssh_fleet: Any
) -> None:
    servers = register(sane_home, ssh_fleet)
    set_health(servers[0], "healthy", {"version": "1.4.2"})
    try:
        _tables_and_json(cli_env)
    finally:  # the fleet is shared: other tests expect s1 without a health file
        (Path(ssh_fleet.servers[0].home) / ".sane" / "health.json").unlink(missing_ok=True)


def _tables_and_json(cli_env: dict[str, str]) -> None:
    cases = [
        (
            ["server", "list"],
            "server-list",
            ["server", "address", "connection", "s1", "s2", "s3", "3 servers"],
        ),
        (
            ["fleet", "run", "echo hi-$FLEET_HOST"],
            "fleet-run",
            ["[s1] hi-s1", "[s2] hi-s2", "[s3] hi-s3", "status", "3 of 3 servers ok"],
        ),
        (["health"], "health", ["status", "healthy", "1.4.2", "unknown", "1 healthy", "2 unknown"]),
    ]
    for argv, schema, expected in cases:
        status, raw = on_terminal(argv, cli_env)
        text = plain(raw)
        for piece in expected:
            assert piece in text, (argv, piece, text)
        assert '"schema_version"' not in text and '{"ok"' not in text, text
        assert "\x1b[" in raw, "a person's output is coloured"
        pipe_status, doc = through_pipe(argv, cli_env)
        validate(schema, doc)
        assert pipe_status == status, (argv, raw, doc)
        # --json on a terminal: the same document a pipe gets (a fleet command's
        # progress goes to stderr, here the same terminal: tests/test_fleet_progress.py)
        json_status, json_raw = on_terminal([*argv, "--json"], cli_env)
        lines = [line for line in plain(json_raw).split("\n") if line.startswith("{")]
        assert len(lines) == 1 and json_status == status, json_raw
        assert json.loads(lines[0]).keys() == doc.keys()


def test_a_run_and_an_error_for_a_person(cli_env: dict[str, str]) -> None:
    status, raw = on_terminal(
        ["run-command", "--keep-ansi", "printf 'a\\tb\\n\\033]0;title\\007'; (exit 3)"], cli_env
    )
    text = plain(raw)
    assert status == 0 and "a\tb" in text and "exit 3" in text, text
    assert "last result" not in text, "no live table for a command without progress events"
    assert "\\x1b]0;title\\x07" in raw, "the program's escape shown as text, not obeyed"
    status, raw = on_terminal(["run-command", "sleep 1.5; echo done"], cli_env)
    assert "working" in raw and "done" in plain(raw), raw  # a spinner while it ran
    assert status == 0 and "exit 0" in plain(raw)
    status, raw = on_terminal(["server", "show", "nope"], cli_env)
    text = plain(raw)
    assert status == 3 and "error [server_not_found]" in text, text
    pipe_status, doc = through_pipe(["server", "show", "nope"], cli_env)
    assert pipe_status == 3 and doc["error"]["code"] == "server_not_found"
    # SANE_OUTPUT=json: a program reading a terminal gets the document
    status, raw = on_terminal(["server", "show", "nope"], {**cli_env, "SANE_OUTPUT": "json"})
    assert status == 3 and json.loads(plain(raw))["error"]["code"] == "server_not_found"
    # --jq on a terminal is the jq result, as through a pipe
    status, raw = on_terminal(["server", "list", "--jq", ".servers | length"], cli_env)
    assert (status, plain(raw).strip()) == (0, "0")


def test_every_view_draws_its_documents_and_shows_server_text_inert() -> None:
    """Each view on a document of its shape (and every other document through the
    generic view): no crash, the facts a person needs, no escape sequence or markup
    from a server reaching the terminal."""
    from rich.console import Console

    from sane.cli import human

    hostile = "\x1b]0;title\x07[/red] \u202eevil"
    error = {"code": "connection_refused", "message": hostile, "details": {}}
    docs: dict[tuple[str, ...], dict[str, Any]] = {
        ("fleet", "run"): {
            "status": "partial",
            "command": "x",
            "duration_ms": 1500.0,
            "counts": {"total": 2, "ok": 1, "unreachable": 1},
            "results": [
                {
                    "server": "s1",
                    "status": "completed",
                    "exit_code": 0,
                    "output": hostile + "\n",
                    "ok": True,
                    "error": None,
                    "started_ms": 0.0,
                    "finished_ms": 12.0,
                },
                {
                    "server": "s2",
                    "status": "unreachable",
                    "exit_code": None,
                    "output": "",
                    "ok": False,
                    "error": error,
                    "started_ms": 0.0,
                    "finished_ms": 30.0,
                },
            ],
        },
        ("deploy", "run"): {
            "deploy_id": "d1",
            "status": "partial",
            "duration_ms": 2000.0,
            "servers": [
                {
                    "server": "s1",
                    "state": "deployed",
                    "reason": None,
                    "applied": ["step:a"],
                    "undone": [],
                },
                {
                    "server": "s2",
                    "state": "rolled_back",
                    "reason": hostile,
                    "applied": [],
                    "undone": ["step:a"],
                },
            ],
        },
        ("demo",): {
            "demo_ok": False,
            "checks": [
                {"check": "one", "ok": True},
                {"check": "two", "ok": False, "detail": hostile},
            ],
        },
        ("up",): {
            "session": "sane",
            "servers": [{"server": "s1", "ok": False, "pane": None, "error": error}],
        },
        ("some", "new", "command"): {
            "name": hostile,
            "nested": {"a": [1, 2]},
            "rows": [{"k": hostile, "deep": {"x": 1}}],
        },
    }
    expected = {
        ("fleet", "run"): [
            "[s1]",
            "1 of 2 servers ok, 1 unreachable in 1.50 s",
            "connection_refused",
        ],
        ("deploy", "run"): ["rolled_back", "deploy d1: partial"],
        ("demo",): ["two", "1 of 2 checks of the story held"],
        ("up",): ["connection_refused", "0 of 1 servers connected"],
        ("some", "new", "command"): ["name:", "nested:", "rows"],
    }
    for path, doc in docs.items():
        console = Console(record=True, width=160, force_terminal=True, color_system="standard")
        human.VIEWS.get(path, human.generic_view)({"ok": True, **doc}, console)
        raw = console.export_text(styles=True, clear=False)
        text = console.export_text()
        for piece in expected[path]:
            assert piece in text, (path, piece, text)
        assert "\x1b]" not in raw and "\x07" not in raw and "\u202e" not in raw, (path, raw)
