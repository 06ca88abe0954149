"""A user's EXIT trap in zsh is the shell's, not the run's (issue #14 item 7).

zsh keeps an EXIT trap set inside a function to that function and runs it when the
function returns; sane's runner evals each command inside one. So on the old code a
`trap 'cleanup' EXIT` typed through sane ran its cleanup at the end of that very run,
never at the shell's exit, and `trap - EXIT` in a run removed nothing. sane's runner now
reads what the command left and keeps it in its own EXIT trap (as it keeps a trap from
before the takeover): these cases go through the forms zsh has (a `trap`, a `TRAPEXIT`
function, `setopt localtraps`), a run that ends by `return` or by an interrupt, and what
must stay as zsh has it (a trap of the user's own function, `setopt posixtraps`).
Real tmux, real zsh.
"""

from __future__ import annotations

from pathlib import Path

from sane.ops.context import Context
from sane.ops.run.resume import run_interrupt
from sane.poll import poll
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import run


def _exits_with_the_trap(ctx: Context, pane: str, said: Path, output: str = "last\n") -> None:
    """The trap did not run during the runs; the run's ``exit 5`` is exact (sane's trap
    runs the user's action, then its own marker) and the action ran once."""
    assert not said.exists()
    r = run(ctx, pane, "echo last; exit 5", timeout=15)
    assert (r["status"], r["exit_code"], r["shell_exited"], r["output"]) == (
        "completed",
        5,
        True,
        output,
    )
    assert said.read_text() == "bye\n"


def _set_in_runs(ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path, *commands: str) -> None:
    """A new zsh pane runs ``commands`` (``{said}`` in them: the file the trap
    appends ``bye`` to), then another run; its later ``exit`` runs the trap once."""
    pane = tmux_server.new_pane("zsh")
    said = tmp_path / "said"
    for command in commands:
        run(ctx, pane, command.format(said=said))
    assert run(ctx, pane, "echo one")["output"] == "one\n"
    _exits_with_the_trap(ctx, pane, said)


def test_a_trapexit_function_set_in_a_run_runs_at_the_shells_exit(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """zsh's function form: a ``TRAPEXIT`` defined in a run, its ``return`` included
    (run as a function, so it ends only the handler, never sane's trap)."""
    _set_in_runs(sane_ctx, tmux_server, tmp_path, "TRAPEXIT() {{ echo bye >> {said}; return 0; }}")


def test_a_trap_set_under_localtraps_runs_at_the_shells_exit(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    _set_in_runs(
        sane_ctx, tmux_server, tmp_path, "setopt localtraps", "trap 'echo bye >> {said}' EXIT"
    )


def test_a_run_that_sets_a_trap_and_returns_keeps_its_status(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """``return`` in the run: its status is the run's exit code and the next run's
    ``$?``, and the trap is kept all the same."""
    pane = tmux_server.new_pane("zsh")
    said = tmp_path / "said"
    r = run(sane_ctx, pane, f"trap 'echo bye >> {said}' EXIT; echo set; return 3")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 3, "set\n")
    assert run(sane_ctx, pane, "echo $?")["output"] == "3\n"
    _exits_with_the_trap(sane_ctx, pane, said)


def test_a_trap_set_in_an_interrupted_run_is_kept(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane("zsh")
    said = tmp_path / "said"
    going = run(sane_ctx, pane, f"trap 'echo bye >> {said}' EXIT; echo set; sleep 60", timeout=1)
    assert going["status"] == "running"
    stopped = dict(run_interrupt(sane_ctx, going["run_id"]))
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130)
    assert run(sane_ctx, pane, "echo one")["output"] == "one\n"
    _exits_with_the_trap(sane_ctx, pane, said)


def test_removing_a_trap_set_in_an_earlier_run(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """``trap - EXIT`` in a later run removes the trap an earlier run set: its action
    never runs, and sane's own trap still makes the exit exact."""
    pane = tmux_server.new_pane("zsh")
    said = tmp_path / "said"
    run(sane_ctx, pane, f"trap 'echo bye >> {said}' EXIT")
    run(sane_ctx, pane, "trap - EXIT")
    r = run(sane_ctx, pane, "echo last; exit 5", timeout=15)
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 5, "last\n")
    assert not said.exists()


def test_a_trap_in_the_users_own_function_stays_the_functions(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """What zsh does for a function of the user's is untouched: its EXIT trap runs when
    that function returns, inside the run, and is not kept for the shell's exit."""
    pane = tmux_server.new_pane("zsh")
    r = run(sane_ctx, pane, "f() { trap 'echo f-done' EXIT; echo in-f; }; f; echo after")
    assert r["output"] == "in-f\nf-done\nafter\n"
    r = run(sane_ctx, pane, "echo last; exit 5", timeout=15)
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 5, "last\n")


def test_under_posixtraps_a_trap_set_in_a_run_is_the_shells_as_in_bash(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """With ``setopt posixtraps`` (here typed before sane's first run, as an rc file
    would) zsh makes a trap set in a function the shell's own, and sane leaves it so:
    it replaces sane's, as in bash, and the run that exits is ``lost`` (tmux's status
    of the shell, or none: docs/protocol.md), the trap run once."""
    pane = tmux_server.new_pane("zsh")
    typed = tmp_path / "typed"
    tmux_server.run("send-keys", "-t", pane, f"setopt posixtraps; touch {typed}", "Enter")
    assert poll(typed.exists, 10)
    said = tmp_path / "said"
    run(sane_ctx, pane, f"trap 'echo bye >> {said}' EXIT")
    assert run(sane_ctx, pane, "echo one")["output"] == "one\n"
    assert not said.exists()
    r = run(sane_ctx, pane, "echo last; exit 5", timeout=15)
    assert (r["status"], r["shell_exited"]) == ("lost", True)
    assert r["exit_code"] in {5, None}
    assert "last\n".startswith(r["output"])
    assert said.read_text() == "bye\n"
