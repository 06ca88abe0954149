"""Progress of fleet commands for a person (issue #17: big fleets stay usable).

``sane up``, ``fleet put``, ``health`` and ``fleet run`` draw N/M done on stderr when
stderr is a terminal, naming each failure as it happens, while stdout keeps the one
JSON document a program reads. Everything here runs the real CLI on a real
pseudo-terminal against real sshd servers; the document on stdout is compared with the
one the same command prints with no terminal at all."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from sane.fleet.health import set_health
from sane.fleet.registry import Registry, Server
from sane.ops.context import Context
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import read_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def closed_port() -> int:
    """A loopback port nothing listens on (connecting is refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def stderr_on_terminal(
    argv: list[str], env: dict[str, str], stdout: Path, rows: int = 40, timeout: float = 120
) -> tuple[int, str]:
    """Run ``sane ARGV`` with stderr on a new pty (``rows`` x 160) and stdout into a
    file; (exit status, what the terminal received)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 160, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    with stdout.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sane.cli.main", *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=slave,
        )
    os.close(slave)
    status, raw = read_terminal(master, proc, timeout)
    return status, raw.decode("utf-8", "replace")


def plain(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


def one_document(path: Path) -> dict[str, Any]:
    lines = path.read_text().splitlines()
    assert len(lines) == 1, lines
    doc: dict[str, Any] = json.loads(lines[0])
    return doc


def test_up_put_health_and_run_show_progress_on_stderr_and_keep_stdout_json(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    servers = register(sane_ctx.home, ssh_fleet)
    for server in servers:
        set_health(server, "healthy", {"version": "1"})
    try:
        _progress_on_stderr(cli_env, sane_ctx, ssh_fleet, tmp_path)
    finally:  # the fleet is shared: other tests expect no health file
        for s in ssh_fleet.servers:
            (Path(s.home) / ".sane" / "health.json").unlink(missing_ok=True)


def _progress_on_stderr(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    Registry(sane_ctx.home).add(Server(name="dead", host="127.0.0.1", port=closed_port()))
    names = [s.name for s in ssh_fleet.servers]
    local = tmp_path / "payload"
    local.write_bytes(b"x" * 1000)
    cases = [
        (["up", *names, "dead"], "up", 5),
        (["fleet", "put", str(local), f"/tmp/sane-progress-{os.getpid()}", "--all"], None, 1),
        (["health"], "health", 0),
        (["fleet", "run", "--all", "--timeout", "20", "true"], None, 1),
    ]
    for argv, title, expected in cases:
        out = tmp_path / "out.json"
        status, raw = stderr_on_terminal(argv, cli_env, out)
        text = plain(raw)
        doc = one_document(out)
        assert status == expected, (argv, text, doc)
        word = title or " ".join(argv[:2])
        # the count line while it works, the failure named as it happened, the summary
        assert f"sane {word}" in text and "/4 done" in text, (argv, text)
        assert re.search(r"✗ dead: \w+( \(exit \d+\))? \(connection_refused: ", text), text
        assert re.search(rf"✗ sane {word}: 4/4 done · 1 failed in \d", text), text
        for name in names:  # a server that did fine is not named outside the table
            assert f"✗ {name}" not in text, text
        # the same document a program gets with no terminal at all
        piped = subprocess.run(
            [sys.executable, "-m", "sane.cli.main", *argv],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert piped.stderr == "", piped.stderr
        again = json.loads(piped.stdout)
        assert piped.returncode == status and again.keys() == doc.keys()
        # --quiet: the terminal gets nothing at all
        quiet_status, quiet_raw = stderr_on_terminal([*argv, "--quiet"], cli_env, out)
        assert quiet_status == status and quiet_raw == "", quiet_raw
        assert one_document(out).keys() == doc.keys()
    # --stream with stderr on a terminal: its JSON lines on stdout, the display beside
    out = tmp_path / "stream.jsonl"
    status, raw = stderr_on_terminal(
        ["fleet", "run", "--servers", names[0], "--stream", "echo hi"], cli_env, out
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert status == 0 and lines[0] == {"event": "begin", "operation": "fleet_run", "total": 1}
    kinds = [e["event"] for e in lines[1:-1]]
    assert (kinds[0], kinds[-1], set(kinds[1:-1])) == ("started", "finished", {"output"}), kinds
    assert lines[-1]["ok"] is True and lines[-1]["results"][0]["output"] == "hi\n"
    assert "✓ sane fleet run: 1/1 done in" in plain(raw), plain(raw)


# Run in a pane as a person's terminal: the display of `sane up` on 1,000 servers, 200
# of which fail with hostile text (an OSC title, rich markup, a bidi override), fed
# through the same listener the CLI uses; it waits for GO before taking itself down.
DISPLAY_1000 = """
import os, sys, time
from sane.cli._stream import LiveProgress
live = LiveProgress(sys.stderr, title="up", spinner=False, output=False)
live({"event": "begin", "operation": "connect", "total": 1000})
for i in range(1000):
    live({"event": "started", "server": f"s{i}", "at_ms": 0})
for i in range(600):
    bad = i % 3 == 0
    live({"event": "finished", "server": f"s{i}", "ok": not bad, "pane": None,
          "error": {"code": "auth_failed", "message": HOSTILE} if bad else None})
open(READY, "w").close()
while not os.path.exists(GO):
    time.sleep(0.05)
live.close()
"""
HOSTILE = "\x1b]0;pwned-title\x07 [red]loud[/red] \u202eabc"


def test_the_display_of_1000_servers_fits_the_terminal_and_shows_server_text_inert(
    tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = tmp_path / "display.py"
    script.write_text(
        f"HOSTILE = {HOSTILE!r}\nREADY = {str(ready)!r}\nGO = {str(go)!r}\n" + DISPLAY_1000
    )
    pane = tmux_server.new_pane("bash")
    tmux_server.run("resize-window", "-t", pane, "-x", "120", "-y", "24")
    title = tmux_server.run("display-message", "-p", "-t", pane, "#{pane_title}")
    tmux_server.run(
        "send-keys", "-t", pane, "-l", f"clear; TERM=xterm-256color {sys.executable} {script}"
    )
    tmux_server.run("send-keys", "-t", pane, "Enter")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline, tmux_server.run("capture-pane", "-p", "-t", pane)
        time.sleep(0.05)

    def screen() -> list[str]:
        return tmux_server.run("capture-pane", "-p", "-t", pane).rstrip("\n").split("\n")

    # The live part is redrawn 8 times a second: wait for the frame after the last event.
    while not any("600/1000 done · 200 failed · 400 connecting" in line for line in screen()):
        assert time.monotonic() < deadline, screen()
        time.sleep(0.05)
    lines = screen()
    assert len(lines) <= 24
    assert any("… " in line and "more not shown" in line for line in lines), lines
    assert any("│ s600" in line and "connecting" in line for line in lines), lines  # still going
    assert not any("│ s1 " in line for line in lines), lines  # done: not a row any more
    failures = [line for line in lines if line.startswith("✗ s")]
    assert failures, lines
    assert "\\x1b]0;pwned-title\\x07 [red]loud[/red] \\u202eabc" in failures[-1], failures
    go.touch()
    while not any("✗ sane up: 600/1000 done · 200 failed" in line for line in screen()):
        assert time.monotonic() < deadline, screen()
        time.sleep(0.05)
    assert tmux_server.run("display-message", "-p", "-t", pane, "#{pane_title}") == title


def test_ctrl_c_during_up_takes_the_display_down_and_gives_the_cursor_back(
    cli_env: dict[str, str], sane_ctx: Context, tmp_path: Path
) -> None:
    """A person's Ctrl-C while servers connect: the display is taken down (the cursor
    it hid is shown again) and stdout gets the ``cancelled`` document."""
    with socket.socket() as silent:  # accepts connections and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        Registry(sane_ctx.home).add(
            Server(name="mute", host="127.0.0.1", port=silent.getsockname()[1])
        )
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        out = tmp_path / "out.json"
        with out.open("wb") as stdout:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sane.cli.main", "up", "mute"],
                env={**cli_env, "TERM": "xterm-256color"},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=slave,
            )
        os.close(slave)
        raw = b""
        deadline = time.monotonic() + 60
        try:
            while b"0/1 done" not in raw:  # the display is up, the server not done
                assert time.monotonic() < deadline, raw
                ready, _, _ = select.select([master], [], [], 1)
                if ready:
                    raw += os.read(master, 65536)
        except BaseException:
            os.close(master)
            proc.kill()
            proc.wait()
            raise
        proc.send_signal(signal.SIGINT)
        status, rest = read_terminal(master, proc, 60)
        raw += rest
        assert status == 130
    assert raw.rfind(b"\x1b[?25h") > raw.rfind(b"\x1b[?25l") >= 0, raw[-300:]
    assert one_document(out)["error"]["code"] == "cancelled"


def test_a_deploy_and_health_wait_show_their_progress_on_stderr(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    """The commands whose events are not per-server results (a deploy's steps, health
    changes) draw their rows on stderr too, and leave no summary that would claim a
    count they do not have."""
    servers = register(sane_ctx.home, ssh_fleet)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps({"name": "p", "steps": [{"name": "one", "run": "true", "undo": "true"}]})
    )
    out = tmp_path / "out.json"
    name = servers[0].name
    status, raw = stderr_on_terminal(["deploy", "run", str(plan), "--servers", name], cli_env, out)
    doc, text = one_document(out), plain(raw)
    assert status == 0 and doc["status"] == "completed", (doc, text)
    assert "sane deploy run" in text and "step:one" in text, text
    assert "✗" not in text and "done in" not in text, text
    wait = ["health", "wait", "--until", '.status == "healthy"', "--servers", name]
    status, raw = stderr_on_terminal([*wait, "--timeout", "0", "--interval", "0.05"], cli_env, out)
    doc, text = one_document(out), plain(raw)
    assert status == 4 and doc["waiting_for"] == [name], (doc, text)
    assert "sane health wait" in text and f"{name}" in text and "unknown" in text, text
    assert "done in" not in text, text
