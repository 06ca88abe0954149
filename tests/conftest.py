from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer, run_process


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that takes TCP connections and never says a word (no ssh banner): an ssh
    to it waits, so a server there is surely still connecting when a test acts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture(params=["bash", "dash"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The tiers (CONTRIBUTING.md), from what a test asks for: the fixtures that start real
# OpenSSH servers (local sshd or containers) make it `ssh`, a private tmux server `tmux`,
# neither `unit`. A test that starts them some other way says so with its own marker.
SSH_FIXTURES = frozenset(
    {"ssh_fleet", "make_fleet", "container_service", "container_fleet", "make_container_fleet"}
)
TMUX_FIXTURES = frozenset({"tmux_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SSH_FIXTURES and item.get_closest_marker("ssh") is None:
            item.add_marker(pytest.mark.ssh)
        if fixtures & TMUX_FIXTURES and item.get_closest_marker("tmux") is None:
            item.add_marker(pytest.mark.tmux)
        if not any(item.get_closest_marker(m) for m in ("ssh", "tmux")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def pane(tmux_server: TmuxTestServer, shell: str) -> str:
    return tmux_server.new_pane(shell)


def run(ctx: Context, pane: str, command: str, **options: Any) -> dict[str, Any]:
    options.setdefault("max_output", None)
    result = dict(run_command(ctx, command, pane=pane, options=RunOptions(**options)))
    validate("run-command", {"ok": True, "schema_version": 1, **result})
    return result


def interrupted_on_timeout(ctx: Context, pane: str, command: str) -> dict[str, Any]:
    """Run ``command`` (it prints ``start``, then waits) with ``interrupt_on_timeout``:
    the run, once its C-c came after ``start``. A loaded machine may not reach the
    ``echo`` within the timeout (seen at load 45: 0.5 s), and the run is then exactly
    ``interrupted`` with no output; that case is checked as such and the run tried
    again with twice the timeout, so the caller's assertions are about a run
    interrupted while it waited, never a speed. The wait for the run's end after the
    C-c (``interrupt_grace``, 5 s by default) is one for a loaded machine: at load
    35-45 a bash run came back ``running`` with ``start\n^C\n`` (twice in ~25 loops), its
    prompt not yet drawn 5 s after the C-c. It ends as soon as the end is seen."""
    timeout = 0.5
    while True:
        r = run(ctx, pane, command, timeout=timeout, interrupt_on_timeout=True, interrupt_grace=60)
        if r["output"] or timeout >= 16:
            return r
        assert (r["status"], r["exit_code"]) == ("interrupted", 130), r
        timeout *= 2


def sent_lines(ctx: Context, pane: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every command line sane's control client for the pane's session sends from now."""
    client = ctx.client(ctx.pane_state(pane).session_id)
    lines: list[str] = []
    send = client.send

    def spy(*commands: str, **kwargs: object) -> object:
        lines.append(" ; ".join(commands))
        return send(*commands, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "send", spy)
    return lines


def output_bytes(result: dict[str, Any]) -> bytes:
    import base64

    if result["output_base64"] is not None:
        return base64.b64decode(result["output_base64"])
    return str(result["output"]).encode()


def local_reference(shell: str, command: str) -> subprocess.CompletedProcess[bytes]:
    """What the same shell prints for ``command`` outside tmux (the expected value)."""
    if shell == "bash":
        argv = ["bash", "--norc", "--noprofile", "-c", command]
    else:
        argv = ["dash", "-c", command]
    return subprocess.run(argv, capture_output=True, check=False)


def cli(
    argv: list[str], env: dict[str, str], stdin: str | None = None
) -> tuple[int, dict[str, Any], str]:
    """Run a sane console command as a process; return (exit status, JSON, stderr)."""
    proc = run_process([sys.executable, "-m", *argv], env, stdin=stdin)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {proc.stdout!r} (stderr {proc.stderr!r})"
    doc = json.loads(lines[0])
    assert "Traceback" not in proc.stderr
    return proc.returncode, doc, proc.stderr


def sane_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    """``sane ARGS`` as a process: (exit status, its one JSON document), as :func:`cli`."""
    status, doc, _ = cli(["sane.cli.main", *args], env)
    return status, doc


def read_terminal(
    master: int, proc: subprocess.Popen[Any], timeout: float = 120
) -> tuple[int, bytes]:
    """(exit status, what the terminal received): read ``master`` until every writer of
    the pty closed it or ``timeout`` passed; ``master`` is closed, and the process
    killed if it outlives the deadline."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the pty
                break
            if not data:
                break
            chunks.append(data)
        status = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, b"".join(chunks)
