"""No tmux control client outlives a Ctrl-C'd or SIGTERM'd sane (issue #17, sweep17 (i)).

A sane process talks to tmux through ``tmux -C attach`` children. tmux 3.3a passes such
a client's stdin and stdout to the server; when the sane process ended with ``os._exit``
(the hard Ctrl-C path) or was killed by SIGTERM, both pipes lost their sane end at once,
the server could not write the client's ``%exit`` and kept the client attached for good,
its process orphaned (ppid 1): later a ``kill-server`` on that socket never finished.
Now every exit path ends its control clients first, and SIGTERM is answered as a
Ctrl-C. Real tmux, real sshd on loopback, signals delivered by ``kill``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sane import procfs
from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.poll import poll
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux.control import attach_detach_lock

from .test_ctrl_c import _UNARMED, _held


def _foreign_clients(tmux: TmuxTestServer) -> dict[int, str]:
    """The tmux server's clients that are not this test process's own: pid -> session."""
    out = tmux.run("list-clients", "-F", "#{client_pid} #{session_id}")
    clients = dict(line.split() for line in out.splitlines())
    return {int(p): s for p, s in clients.items() if procfs.field(p, procfs.PPID) != os.getpid()}


def _fleet_run(started: Path, servers: list[Any]) -> list[str]:
    names = ",".join(s.name for s in servers)
    command = f"touch {started}; sleep 5"
    return ["-m", "sane.cli.main", "fleet", "run", "--servers", names, "--timeout", "60", command]


@pytest.mark.parametrize(
    ("what", "signals"),
    [
        ("up", [signal.SIGINT]),
        ("up", [signal.SIGTERM]),
        ("fleet run", [signal.SIGINT] * 3),
        ("fleet run", [signal.SIGTERM]),
        ("hand-over", [signal.SIGINT]),
    ],
    ids=["up-sigint", "up-sigterm", "fleet-run-3-sigints", "fleet-run-sigterm", "hand-over"],
)
def test_no_control_client_outlives_a_signalled_sane(
    tmux_server: TmuxTestServer,
    cli_env: dict[str, str],
    sane_ctx: Context,
    ssh_fleet: Any,
    blackhole: int,
    tmp_path: Path,
    what: str,
    signals: list[signal.Signals],
) -> None:
    """sane signalled at several moments: `sane up` while it connects (one server never
    answers); a fleet run once its command runs (SIGTERM as a first Ctrl-C: the soft
    stop; the third Ctrl-C: the hard one); a command following a run with no soft stop
    (the hand-over, then ``os._exit``). A window of sane's session prints without
    pause, so tmux has output queued for sane's client when the signal lands. Each
    time: ``cancelled``, exit 130, every control client sane had ended and reaped by
    the time it exits, and tmux lets them go. Before: SIGTERM killed sane with no
    document, and its clients, like those of the hard Ctrl-C, stayed attached."""
    servers = register(sane_ctx.home, ssh_fleet)
    started, done = tmp_path / "started", tmp_path / "done"
    if what == "up":
        silent = servers[0].model_copy(update={"name": "silent", "port": blackhole})
        Registry(sane_ctx.home).add(silent)
        argv, ready = ["-m", "sane.cli.main", "up", "--all", "--max-parallel", "4"], None
    elif what == "fleet run":
        argv, ready = _fleet_run(started, servers), started
    else:
        pane = tmux_server.new_pane()
        argv, ready = ["-c", _UNARMED, pane, _held(started, done)], started
    proc = subprocess.Popen(
        [sys.executable, *argv], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    flood = ""
    try:
        assert poll(lambda: (ready is None or ready.exists()) and _foreign_clients(tmux_server), 60)
        seen = _foreign_clients(tmux_server)
        with attach_detach_lock(tmux_server.server):  # a window added: as sane does
            flood = tmux_server.run(
                "new-window",
                "-d",
                "-P",
                "-F",
                "#{pane_id}",
                "-t",
                f"{min(seen.values())}:",
                "yes sane-test-flood-sane-test-flood",
            ).strip()
        printing = ["display-message", "-p", "-t", flood, "#{history_size}"]
        assert poll(lambda: int(tmux_server.run(*printing)) > 100, 30)
        for number, signum in enumerate(signals):
            if number:  # Python runs one handler for signals that arrive together
                poll(lambda: False, 0.05)
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if flood:
            tmux_server.run("kill-pane", "-t", flood)
        done.with_suffix(".go").touch()
    assert out.strip(), err.decode()
    doc = json.loads(out)
    assert (proc.returncode, doc["error"]["code"]) == (130, "cancelled"), doc
    alive = [p for p in seen if procfs.state(p) not in (None, "Z")]
    assert not alive, f"tmux -C clients outlived sane: {alive}"
    assert poll(lambda: not _foreign_clients(tmux_server), 15), _foreign_clients(tmux_server)


# A sane process that ends with a control client still open: the hub's clients were let
# go as its context closed, but a fleet worker thread attached another one after that.
_OPEN_CLIENT = """
import sys
from pathlib import Path
from sane.cli._emit import emit, guarded
from sane.poll import poll
from sane.tmux.command import TmuxServer
from sane.tmux.control import ControlHub

def body() -> None:
    ControlHub(TmuxServer.from_env(None)).attach(sys.argv[1])
    started = Path(sys.argv[3])
    started.touch()
    go = started.with_suffix(".go")
    poll(go.exists, 120)  # SIGTERM: lands in this wait
    if sys.argv[2] == "ctrl-c":
        raise KeyboardInterrupt
    emit({"done": True})

guarded(body)
"""


@pytest.mark.parametrize("end", ["ctrl-c", "done", "sigterm"])
def test_a_client_still_open_when_sane_ends_is_ended_with_it(
    tmux_server: TmuxTestServer, cli_env: dict[str, str], tmp_path: Path, end: str
) -> None:
    """Whichever way sane ends (a hard Ctrl-C's ``os._exit``, a normal exit, SIGTERM),
    a control client it still has is killed and reaped before it is gone, and tmux
    drops it. Before, the client outlived sane (orphaned, still attached) every time:
    for a second or more, and for good when tmux had output queued for it."""
    pane = tmux_server.new_pane()
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPEN_CLIENT, pane, end, str(started)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert poll(started.exists, 60), "sane never attached"
        seen = _foreign_clients(tmux_server)
        assert seen
        if end == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            started.with_suffix(".go").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    alive = [p for p in seen if procfs.state(p) not in (None, "Z")]
    assert not alive, f"tmux -C clients outlived sane: {alive}"
    assert poll(lambda: not _foreign_clients(tmux_server), 15), _foreign_clients(tmux_server)
    assert out.strip(), err.decode()
    doc = json.loads(out)
    if end == "done":
        assert (proc.returncode, doc) == (0, {"ok": True, "schema_version": 1, "done": True})
    else:
        assert (proc.returncode, doc["error"]["code"]) == (130, "cancelled"), doc
        assert ("SIGTERM" if end == "sigterm" else "Ctrl-C") in doc["error"]["message"]
