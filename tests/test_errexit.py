"""`set -e` typed interactively (issue #14, Measured 10 and "No stuck panes"): the shell
ends at the first failing command, and the run says so exactly, in every POSIX shell.

The runner evals each command inside a function. zsh runs no EXIT trap when errexit
ends it there, so sane's exit marker never came and the shell died at once: tmux drops
what it has not yet sent of a dying pane, and the run came back `completed` with its
output cut (even empty) or `lost`: `echo a; set -e; false` lost `a` or its status in
4 of 10 fresh zsh panes at load 10-40; 20,000 lines before the failure lost their
last 4-10 KB every time. Each case runs a few times in one pane (the shell dies each
time; the next run brings it back).
"""

from __future__ import annotations

import pytest

from sane.ops.context import Context
from sane.testing.fleet import Fleet
from sane.testing.pytest_plugin import TmuxTestServer

from . import test_shells as matrix
from .conftest import run

login_fleet = matrix.login_fleet

POSIX_SHELLS = ["bash", "dash", "zsh", "ksh93", "mksh", "ash", "yash", "posh"]
TIMES = 3


@pytest.mark.parametrize("where", ["local", "login"])
@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_set_e_ends_the_shell_with_the_whole_output(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    request: pytest.FixtureRequest,
    shell: str,
    where: str,
) -> None:
    """Locally, and as the login shell of a loopback sshd (its own pane each time: the
    shell's death ends the ssh, and sane's pane for the server is opened anew)."""
    if where == "local":
        pane = tmux_server.new_pane(shell)
    else:
        fleet: Fleet
        fleet, name = request.getfixturevalue("login_fleet")[shell]
    lines = "".join(f"{n}\n" for n in range(1, 20001))
    for _ in range(TIMES):
        if where == "login":
            pane = matrix.login_pane(sane_ctx, fleet, name)
        r = run(sane_ctx, pane, "seq 1 20000; set -e; false; echo not-reached", timeout=30)
        got = (r["status"], r["exit_code"], r["output"], r["shell_exited"])
        assert got == ("completed", 1, lines, True)


@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_set_e_left_on_by_a_run_ends_the_next_one(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str
) -> None:
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "set -e")["status"] == "completed"
    r = run(sane_ctx, pane, "echo b; sh -c 'exit 3'; echo reached", timeout=20)
    got = (r["status"], r["exit_code"], r["output"], r["shell_exited"])
    if shell == "posh":  # posh, typed into by hand alike, keeps no errexit to a later line
        assert got == ("completed", 0, "b\nreached\n", False)
    else:
        assert got == ("completed", 3, "b\n", True)
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_set_e_in_a_subshell_ends_only_the_subshell(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str
) -> None:
    """zsh's subshells inherit its traps: the one that ends itself is not the shell."""
    pane = tmux_server.new_pane(shell)
    r = run(sane_ctx, pane, "(set -e; false; echo no); echo after $?; x=$(set -e; false)")
    assert (r["status"], r["exit_code"], r["output"], r["shell_exited"]) == (
        "completed",
        1,
        "after 1\n",
        False,
    )
    r = run(sane_ctx, pane, "echo still; (exit 2)")
    assert (r["exit_code"], r["output"], r["shell_restarted"]) == (2, "still\n", False)
