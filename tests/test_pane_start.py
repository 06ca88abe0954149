"""A pane on its way to its shell is not typed into before it gets there.

tmux starts a pane's command through its default shell (``sh -c 'fish ...'``), which
execs the command a moment later; under load that moment is long. A POSIX takeover
line typed into the pane while it is still ``sh`` is read by fish once it starts, and
fish's takeover never confirmed (``runner_unavailable`` after 15 s: seen in CI-like
runs at load 20-40 in test_shells' and test_screen_prompt's fish cases). These tests
make the moment last a second, so they do not depend on load."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from sane.ops import takeover
from sane.ops.context import Context
from sane.poll import poll
from sane.testing.pytest_plugin import SHELLS, TmuxTestServer

from .conftest import run


def _slow_start(tmp_path: Path, wrapper: str, shell: str) -> str:
    """A pane command: ``wrapper -c`` waits a second, then execs ``shell``."""
    script = tmp_path / "start.sh"
    script.write_text(f"sleep 1\nexec {SHELLS[shell]}\n")
    return f"{wrapper} -c {shlex.quote(f'. {script}')}"


@pytest.mark.parametrize("wrapper", ["sh", "bash --norc --noprofile"])
def test_fish_started_through_a_shell_gets_fishs_runner(
    tmux_server: TmuxTestServer, sane_ctx: Context, tmp_path: Path, wrapper: str
) -> None:
    pane = tmux_server.new_pane(_slow_start(tmp_path, wrapper, "fish"))
    r = run(sane_ctx, pane, "set x 5; echo $x; echo $FISH_VERSION | string length -q; echo $status")
    assert (r["status"], r["output"], r["exit_code"]) == ("completed", "5\n0\n", 0), r
    kind = tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_shell}").strip()
    assert kind == "fish"
    assert run(sane_ctx, pane, "false")["exit_code"] == 1


def test_a_posix_shell_started_through_a_shell_runs_exactly(
    tmux_server: TmuxTestServer, sane_ctx: Context, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane(_slow_start(tmp_path, "sh", "dash"))
    r = run(sane_ctx, pane, "printf '%s\\n' \"$0\"; (exit 3)")
    assert (r["status"], r["output"], r["exit_code"]) == ("completed", "dash\n", 3), r


def test_a_shell_that_took_the_terminal_from_its_command_string_is_not_waited_for(
    tmux_server: TmuxTestServer, sane_ctx: Context, tmp_path: Path
) -> None:
    """``bash -c 'cd DIR && bash'`` (bash does not exec the last command of a list):
    the pane's first process keeps its ``-c``, but the interactive bash it started took
    the terminal, so the pane is a shell at its prompt, not one still starting."""
    inner = SHELLS["bash"]
    pane = tmux_server.new_pane(f"bash --norc -c {shlex.quote(f'cd {tmp_path} && {inner}; exit')}")
    root = int(tmux_server.run("display-message", "-p", "-t", pane, "#{pane_pid}"))
    # The inner bash is drawn its prompt once it owns the terminal.

    def at_prompt() -> bool | None:
        return tmux_server.run("capture-pane", "-p", "-t", pane).startswith("$") or None

    assert poll(at_prompt, 30)
    assert not takeover._runs_command_string(root, "bash")
    r = run(sane_ctx, pane, "pwd")
    assert (r["status"], r["output"]) == ("completed", f"{tmp_path}\n"), r


def test_the_command_string_check_reads_the_kernel(tmp_path: Path) -> None:
    """What /proc says of real processes: a ``sh -c`` still running its string in the
    foreground is starting; an interactive-looking argv or another name is not."""
    import subprocess

    proc = subprocess.Popen(["sh", "-c", "sleep 30; true"], start_new_session=True)
    try:
        # start_new_session: its own group, but no terminal: tpgid is -1, not its group.
        assert not takeover._runs_command_string(proc.pid, "sh")
        assert not takeover._runs_command_string(proc.pid, "python3")
        assert not takeover._runs_command_string(None, "sh")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_a_shell_running_a_program_from_its_startup_files_is_waited_for(
    tmux_server: TmuxTestServer, sane_ctx: Context, tmp_path: Path, shell: str
) -> None:
    """A shell whose startup files run a program (yash's common init runs `ls` and
    `grep`; a .bashrc `dircolors`): taken over at once, the pane showed that program
    and the run was refused (`pane_not_shell ... running 'ls'`, seen in CI). A young
    shell's pane with a program in front is waited for; here the program runs 1 s."""
    rc = tmp_path / "rc"
    rc.write_text("sleep 1\nPS1='$ '\n")
    command = {
        "dash": f"env ENV={rc} dash -i",
        "bash": f"bash --noprofile --rcfile {rc} -i",
    }[shell]
    pane = tmux_server.new_pane(command)
    r = run(sane_ctx, pane, "echo started; (exit 4)")
    assert (r["status"], r["output"], r["exit_code"]) == ("completed", "started\n", 4), r


def test_a_program_in_an_older_shells_pane_is_refused_at_once(
    tmux_server: TmuxTestServer, sane_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """...while a program a person runs in a pane whose shell is past its startup is
    refused as before (the window made 0 s long here, so no wait at all)."""
    from sane import errors

    monkeypatch.setattr(takeover, "SHELL_STARTUP_SECONDS", 0.0)
    pane = tmux_server.new_pane("bash")
    tmux_server.run("send-keys", "-t", pane, "-l", "sleep 60")
    tmux_server.run("send-keys", "-t", pane, "Enter")

    def sleeping() -> bool | None:
        current = tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}")
        return current.strip() == "sleep" or None

    assert poll(sleeping, 30)
    with pytest.raises(errors.PaneNotShell):
        run(sane_ctx, pane, "echo no")
