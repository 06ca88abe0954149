"""A dropped link to a server (issue #14, Measured 9): the ssh under a server's pane
dies (killed, as a network drop or an idle timeout ends it). The next run there
reconnects, and must say the shell is new: its `cd` and variables are gone. Real tmux,
real sshd."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from sane.fleet.panes import pane_for_server
from sane.ops.context import Context
from sane.poll import poll
from sane.testing.fleet import register

from .conftest import run


def test_the_run_after_a_dropped_link_says_the_shell_is_new(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    register(sane_ctx.home, ssh_fleet)
    pane = pane_for_server(sane_ctx, "s3")
    first = run(sane_ctx, pane, f"cd {tmp_path}; X=1")
    assert first["status"] == "completed"
    ssh_pid = int(sane_ctx.tmux(["display", "-p", "-t", pane, "#{pane_pid}"])[0])
    os.kill(ssh_pid, signal.SIGKILL)
    assert poll(lambda: sane_ctx.tmux(["display", "-p", "-t", pane, "#{pane_dead}"]) == ["1"], 15.0)
    after = run(sane_ctx, pane_for_server(sane_ctx, "s3"), 'echo "[$X]"; pwd')
    assert (after["status"], after["shell_restarted"]) == ("completed", True), after
    assert after["output"].startswith("[]\n") and after["output"] != f"[]\n{tmp_path}\n"
    assert run(sane_ctx, pane_for_server(sane_ctx, "s3"), "true")["shell_restarted"] is False
