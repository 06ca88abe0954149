"""tmux misses a pane process's SIGCHLD now and then (tmux/tmux#311): the pane is dead
with no exit status until something makes tmux reap. sane nudges it with a SIGCHLD
(sane.ops.run.ending.nudge_reaper); a nudge can be missed as well, so it is sent again
while the process stays a zombie. The loss is made exact here: the tmux server is
traced and its next SIGCHLDs suppressed (tests/swallow_sigchld.py). Real tmux, real
bash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sane.ops.context import Context
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import run

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ptrace and /proc: Linux")
def test_a_missed_nudge_is_sent_again(sane_ctx: Context, tmux_server: TmuxTestServer) -> None:
    """The shell replaced by a program that exits 4 (no sane marker: the exit code is
    tmux's record of the pane's process), and tmux misses that process's SIGCHLD (and
    libutempter's helper's) and sane's first nudge: the second nudge makes it reap, and
    the run says 4. Before, one nudge per wait: the run waited out its 5 s and said
    nothing of the exit code."""
    pane = tmux_server.new_pane("bash")
    assert run(sane_ctx, pane, "echo warm")["output"] == "warm\n"
    server_pid = tmux_server.run("display-message", "-p", "#{pid}").strip()
    tracer = subprocess.Popen(
        [sys.executable, "-m", "tests.swallow_sigchld", server_pid, str(os.getpid()), "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tracer.stdout is not None
        ready = tracer.stdout.readline()  # blocks until the tracer traces, or ends
        if ready != "ready\n":
            tracer.wait(30)
            assert tracer.stderr is not None
            pytest.skip(f"cannot trace the tmux server: {tracer.stderr.read().strip()}")
        result = run(sane_ctx, pane, "exec sh -c 'exit 4'", timeout=30)
        assert tracer.wait(30) == 0  # the first nudge suppressed, then let go
        swallowed = tracer.stdout.read().split("\n")
        assert f"swallowed {os.getpid()} 0" in swallowed, swallowed  # this process's nudge
        assert any(line.endswith(" 1") for line in swallowed), swallowed  # a child's end
        assert (result["exit_code"], result["shell_exited"]) == (4, True), result
    finally:
        if tracer.poll() is None:
            tracer.kill()  # a tracer's end lets its tracee go
            tracer.wait()
