"""A run's life in a pane whatever the shell's prompt does: how it ends, who may end it,
what the next run finds. Real tmux, real bash and dash (zsh where installed)."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.panes import pane_for_server
from sane.ops.context import Context
from sane.ops.run.resume import run_input, run_interrupt, run_wait
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import interrupted_on_timeout, run

BASH = "env -u HISTCONTROL HISTFILE=/dev/null PS1='$ ' bash --norc --noprofile"
# Prompts that are rebuilt before every display, as prompt frameworks do (rc files).
PROMPT_SETUPS = {
    "prompt-command": "PROMPT_COMMAND='PS1=\"\\u@\\h:\\w\\$ \"'\n",
    "prompt-command-array": "PROMPT_COMMAND=('PS1=\"[\\w]> \"' 'true')\n",
    # starship's bash init: a precmd that rebuilds a two-line prompt, kept first.
    "starship-like": '_sl_precmd() { local s=$?; PS1="\\n\\[\\e[1m\\]\\w ($s)\\[\\e[0m\\]'
    '\\n❯ "; }\nPROMPT_COMMAND="_sl_precmd;${PROMPT_COMMAND:-}"\n',
    "etc-bashrc": ". /etc/bash.bashrc\n",
}
ZSH = shutil.which("zsh")


@pytest.fixture(params=["bash", "dash", "zsh"])
def shell_pane(request: pytest.FixtureRequest, tmux_server: TmuxTestServer) -> str:
    """A pane of bash, dash or zsh (clean rc files)."""
    return tmux_server.new_pane(str(request.param))


def _settled(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("status", "exit_code", "output")}


@pytest.fixture(params=sorted(PROMPT_SETUPS))
def framework_pane(
    request: pytest.FixtureRequest, tmux_server: TmuxTestServer, tmp_path: Path
) -> str:
    rc = tmp_path / "bashrc"
    rc.write_text("PS1='$ '\n" + PROMPT_SETUPS[str(request.param)])
    return tmux_server.new_pane(
        f"env -u HISTCONTROL -u PROMPT_COMMAND HISTFILE=/dev/null bash --rcfile {rc} --noprofile"
    )


def test_interrupt_with_a_prompt_rebuilt_before_each_display(
    sane_ctx: Context, framework_pane: str
) -> None:
    pane = framework_pane
    going = run(sane_ctx, pane, "echo start; sleep 30", timeout=0.5)
    assert going["status"] == "running"
    stopped = dict(run_interrupt(sane_ctx, going["run_id"]))
    assert (stopped["status"], stopped["exit_code"], stopped["output"]) == ("interrupted", 130, "")
    with pytest.raises(errors.RunFinished):
        run_input(sane_ctx, going["run_id"], "touch should-not-exist")
    assert _settled(run(sane_ctx, pane, "echo next; ls should-not-exist 2>/dev/null; true")) == {
        "status": "completed",
        "exit_code": 0,
        "output": "next\n",
    }


def test_interrupt_on_timeout_with_a_rebuilt_prompt(sane_ctx: Context, framework_pane: str) -> None:
    r = interrupted_on_timeout(sane_ctx, framework_pane, "echo start; sleep 30")
    assert _settled(r) == {"status": "interrupted", "exit_code": 130, "output": "start\n"}
    assert run(sane_ctx, framework_pane, "echo next")["output"] == "next\n"


@pytest.mark.parametrize("change", ["PS1='x> '", ". /etc/bash.bashrc", "PS1='\\$? \\w> '"])
def test_a_run_that_changes_the_prompt(
    sane_ctx: Context, tmux_server: TmuxTestServer, change: str
) -> None:
    pane = tmux_server.new_pane(BASH)
    assert run(sane_ctx, pane, change)["status"] == "completed"
    r = interrupted_on_timeout(sane_ctx, pane, "echo start; sleep 30")
    assert _settled(r) == {"status": "interrupted", "exit_code": 130, "output": "start\n"}
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_printing_the_prompt_does_not_fake_an_interrupt(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane(BASH)
    r = run(sane_ctx, pane, 'p="${PS1@P}"; printf %s "$p"; echo; echo after; (exit 3)')
    assert (r["status"], r["exit_code"]) == ("completed", 3)
    assert r["output"].endswith("\nafter\n")


def test_a_forged_prompt_marker_from_the_pane_option_ends_nothing(
    sane_ctx: Context, pane: str
) -> None:
    run(sane_ctx, pane, "true")
    token = sane_ctx.tmux(["show-options", "-p", "-v", "-t", pane, "@sane_token"])[0].split()[0]
    forged = f"printf '\\033]7770;SANE;{token};P;0\\007'; echo after; (exit 4)"
    r = run(sane_ctx, pane, forged)
    assert _settled(r) == {"status": "completed", "exit_code": 4, "output": "after\n"}


def test_nested_interactive_shell_with_exported_prompt(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane(BASH)
    run(sane_ctx, pane, "export PS1")
    r = run(sane_ctx, pane, "bash --norc --noprofile -i", timeout=1)
    # The nested shell waits at its own prompt: the run is not over, nor interrupted.
    assert (r["status"], r["waiting_program"]) == ("waiting_input", "bash")
    done = dict(run_input(sane_ctx, r["run_id"], "exit 6", timeout=10))
    assert (done["status"], done["exit_code"]) == ("completed", 6)
    assert run(sane_ctx, pane, "echo outer")["output"] == "outer\n"


def test_a_person_pressing_ctrl_c_ends_a_handed_over_run(sane_ctx: Context, pane: str) -> None:
    going = run(sane_ctx, pane, "sleep 30", timeout=0.3)
    sane_ctx.tmux(["send-keys", "-t", pane, "C-c"])
    done = dict(run_wait(sane_ctx, going["run_id"], timeout=10))
    assert (done["status"], done["exit_code"]) == ("interrupted", 130)
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"


@pytest.mark.skipif(ZSH is None, reason="zsh not installed")
def test_zsh_precmd_rebuilding_the_prompt(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    (tmp_path / ".zshrc").write_text('precmd() { PROMPT="%n@%m %~ %# "; }\n')
    pane = tmux_server.new_pane(f"env ZDOTDIR={tmp_path} zsh -d")
    # (#14 item 1: zsh's `command eval` looked for an external eval; nothing ran.)
    assert run(sane_ctx, pane, "echo ok")["output"] == "ok\n"
    r = interrupted_on_timeout(sane_ctx, pane, "echo start; sleep 30")
    assert _settled(r) == {"status": "interrupted", "exit_code": 130, "output": "start\n"}
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_prompt_changed_by_the_interrupted_run_itself(sane_ctx: Context, pane: str) -> None:
    r = interrupted_on_timeout(sane_ctx, pane, "PS1='x> '; echo start; sleep 30")
    assert _settled(r) == {"status": "interrupted", "exit_code": 130, "output": "start\n"}
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


# -- #14 item 12: waiting on a run that ended within its own call -----------------------


def test_wait_or_interrupt_on_a_run_that_finished_in_time(
    sane_ctx: Context, shell_pane: str
) -> None:
    done = run(sane_ctx, shell_pane, "echo hi; (exit 3)")
    assert (done["status"], done["exit_code"]) == ("completed", 3)
    for _ in range(3):  # later runs in the same pane do not make it forgotten
        run(sane_ctx, shell_pane, "true")
    rid = done["run_id"]
    # run_wait and run_interrupt return its ending (its output came with its call)
    for ended in (run_wait(sane_ctx, rid, timeout=1), run_interrupt(sane_ctx, rid)):
        assert dict(ended) == {
            **done,
            "command": None,  # the pane's note keeps the ending, not the command
            "output": "",
            "output_start": 3,
            "output_bytes": 0,
            "duration_ms": round(done["duration_ms"]),
        }
    # run_input is refused: the text would reach the idle shell as a command
    with pytest.raises(errors.RunFinished) as caught:
        run_input(sane_ctx, rid, "touch nothing")
    assert {
        k: caught.value.details[k]
        for k in ("pane", "status", "exit_code", "shell_exited", "output_bytes")
    } == {
        "pane": shell_pane,
        "status": "completed",
        "exit_code": 3,
        "shell_exited": False,
        "output_bytes": 3,
    }
    with pytest.raises(errors.RunNotFound):
        run_wait(sane_ctx, "r0123456789ab", timeout=1)


# -- #16 item 3: an answer is one line, and never typed into an idle shell ---------------


@pytest.mark.parametrize("text", ["y\ntouch {f}", "y\rtouch {f}", "y\x03", "y\x04", "\x1b:q"])
def test_an_answer_is_one_line(
    sane_ctx: Context, shell_pane: str, tmp_path: Path, text: str
) -> None:
    marker = tmp_path / "typed"
    r = run(sane_ctx, shell_pane, "printf 'Go? '; read a; echo \"got $a\"", timeout=10)
    assert r["status"] == "waiting_input"
    with pytest.raises(errors.InvalidArgument) as caught:
        run_input(sane_ctx, r["run_id"], text.format(f=marker))
    assert caught.value.details["field"] == "text"
    done = dict(run_input(sane_ctx, r["run_id"], "fine\tok"))
    assert (done["status"], done["output"]) == ("completed", "fine\tok\ngot fine\tok\n")
    assert not marker.exists()


def test_a_multi_line_answer_when_asked_for(sane_ctx: Context, shell_pane: str) -> None:
    r = run(sane_ctx, shell_pane, 'read a; read b; echo "$b/$a"', timeout=10)
    assert r["status"] == "waiting_input"
    done = dict(run_input(sane_ctx, r["run_id"], "one\ntwo", multi_line=True))
    assert (done["status"], done["output"]) == ("completed", "one\ntwo\ntwo/one\n")


def _kill_recorder(run_id: str) -> None:
    """Kill the pipe-pane process that records ``run_id``'s stream (its stdout is the
    run's stream file)."""
    import os
    import signal

    killed = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if run_id in os.readlink(f"/proc/{pid}/fd/1"):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(pid)
        except OSError:
            continue
    assert killed


def test_a_run_whose_recording_died_ends_and_takes_no_answer(
    sane_ctx: Context, shell_pane: str, tmp_path: Path
) -> None:
    marker = tmp_path / "typed"
    go = tmp_path / "go"
    # The command ends when the test says so (not after a time a loaded machine may
    # outlast), so it is surely busy while the first answer is refused.
    going = run(
        sane_ctx,
        shell_pane,
        f"until [ -e {go} ]; do sleep 0.05; done; echo done; (exit 3)",
        timeout=0.2,
    )
    assert going["status"] == "running"
    _kill_recorder(going["run_id"])
    # Busy, not reading: typed ahead, the text would run once the command ends.
    with pytest.raises(errors.RunNotWaiting):
        run_input(sane_ctx, going["run_id"], f"touch {marker}", timeout=0.2)
    go.touch()
    # The command ends with nobody recording it; the shell is back at its prompt.
    with pytest.raises(errors.RunFinished):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the kernel shows the shell idle
            with contextlib.suppress(errors.RunNotWaiting):
                run_input(sane_ctx, going["run_id"], f"touch {marker}", timeout=0.2)
    ended = dict(run_wait(sane_ctx, going["run_id"], timeout=10))
    assert (ended["status"], ended["exit_code"]) == ("lost", 3)
    assert not marker.exists()
    assert run(sane_ctx, shell_pane, "echo free")["output"] == "free\n"


def test_an_answer_to_a_run_whose_recording_died(
    sane_ctx: Context, shell_pane: str, tmp_path: Path
) -> None:
    marker = tmp_path / "typed"
    asked = run(sane_ctx, shell_pane, "printf 'Go? '; read a; echo got $a", timeout=10)
    assert asked["status"] == "waiting_input"
    _kill_recorder(asked["run_id"])
    ended = dict(run_input(sane_ctx, asked["run_id"], "yes", timeout=10))
    assert (ended["status"], ended["exit_code"]) == ("lost", 0)
    with pytest.raises(errors.RunFinished):
        run_input(sane_ctx, asked["run_id"], f"touch {marker}")
    assert not marker.exists()
    assert run(sane_ctx, shell_pane, "echo free")["output"] == "free\n"


# -- #14 item 7: EXIT traps ---------------------------------------------------------------


def _assert_ended_by_the_shells_death(
    ctx: Context, pane: str, result: dict[str, Any], code: int, marker_came: bool
) -> None:
    """Exact or unknown, never wrong. A shell that died by the command's own EXIT trap
    (sane's marker never came) is `lost`, since nothing proves its output whole (tmux
    and the kernel drop a dying pane's unsent bytes), with the command's own exit code
    when tmux recorded it. Where sane's marker does come (zsh: sane's runner keeps a
    trap set in a run inside sane's own, docs/protocol.md), `completed`. Either way
    `lost` with `None` when tmux had no status (tmux 3.3a sometimes has none after
    sane's wait); when tmux still shows the status now, sane must have reported it."""
    known = ctx.tmux(["display", "-p", "-t", pane, "#{pane_dead_status}"])
    got = (result["status"], result["exit_code"], result["shell_exited"])
    ended = ("completed" if marker_came else "lost", code, True)
    if known == [str(code)]:
        assert got == ended
    else:  # no status (yet), or the pane was made anew since
        assert got in {ended, ("lost", None, True)}


def _zsh(request: pytest.FixtureRequest) -> bool:
    """Whether this case's ``shell_pane`` is zsh (a run's trap kept inside sane's)."""
    return bool(request.node.callspec.params["shell_pane"] == "zsh")


def test_a_command_with_its_own_exit_trap(
    sane_ctx: Context, shell_pane: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    said = tmp_path / "said"
    r = run(
        sane_ctx, shell_pane, f"trap 'echo CLEANUP > {said}' EXIT; echo work; exit 4", timeout=10
    )
    # The shell's exit status, as tmux keeps it, is the run's exit code; the run is
    # `lost` all the same: its output may miss the tail (tmux drops what it has not yet
    # sent of a pane whose process died; sane's own EXIT trap prevents that by waiting
    # for a key, but the command replaced it), and nothing tells whether it does.
    _assert_ended_by_the_shells_death(sane_ctx, shell_pane, r, 4, _zsh(request))
    assert said.read_text() == "CLEANUP\n"
    assert run(sane_ctx, shell_pane, "echo next")["output"] == "next\n"


def test_a_users_exit_trap_survives_later_runs(
    sane_ctx: Context, shell_pane: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    said = tmp_path / "said"
    run(sane_ctx, shell_pane, f"trap 'echo bye > {said}' EXIT")
    for command in ("echo one", "false", "(exit 3)"):
        run(sane_ctx, shell_pane, command)
    r = run(sane_ctx, shell_pane, "echo last; exit 5", timeout=10)
    _assert_ended_by_the_shells_death(sane_ctx, shell_pane, r, 5, _zsh(request))
    assert said.read_text() == "bye\n"


def test_exit_without_a_user_trap_still_ends_on_sanes_marker(
    sane_ctx: Context, shell_pane: str
) -> None:
    r = run(sane_ctx, shell_pane, "echo work; exit 6", timeout=10)
    assert (r["status"], r["exit_code"], r["shell_exited"], r["output"]) == (
        "completed",
        6,
        True,
        "work\n",
    )
    assert run(sane_ctx, shell_pane, "echo next")["output"] == "next\n"


# -- #14 items 5, 8, 9: no stuck panes ----------------------------------------------------


@pytest.mark.parametrize(
    "ending", ["sleep 1; exit 3", "sleep 1; set -e; false", "sleep 1; kill -9 $$"]
)
def test_a_handed_over_run_that_ends_the_shell_leaves_no_pipe(
    sane_ctx: Context, shell_pane: str, ending: str
) -> None:
    going = run(sane_ctx, shell_pane, ending, timeout=0.3)
    assert going["status"] == "running"
    ended = dict(run_wait(sane_ctx, going["run_id"], timeout=15))
    assert ended["shell_exited"] is True
    after = run(sane_ctx, shell_pane, "echo x")
    assert (after["status"], after["output"]) == ("completed", "x\n")
    # The next timed-out run is resumable: no pipe of the old run survived the respawn.
    again = run(sane_ctx, shell_pane, "sleep 1; echo y", timeout=0.3)
    assert again["status"] == "running"
    rest = dict(run_wait(sane_ctx, again["run_id"], timeout=15))
    assert (rest["status"], again["output"] + rest["output"]) == ("completed", "y\n")
    assert sane_ctx.tmux(["display", "-p", "-t", shell_pane, "#{pane_pipe}"]) == ["0"]


@pytest.mark.parametrize("ending", ["exit 3", "set -e; false", "kill -9 $$", "TMOUT=1"])
def test_the_run_after_the_shell_died_says_it_is_new(
    sane_ctx: Context, shell_pane: str, tmp_path: Path, ending: str, request: pytest.FixtureRequest
) -> None:
    if ending == "TMOUT=1" and request.node.callspec.params["shell_pane"] == "dash":
        pytest.skip("dash has no TMOUT")
    first = run(sane_ctx, shell_pane, f"cd {tmp_path}; X=1")
    assert first["shell_restarted"] is False
    run(sane_ctx, shell_pane, ending, timeout=10)
    if ending == "TMOUT=1":  # the shell logs itself out, idle at its prompt
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sane_ctx.tmux(
            ["display", "-p", "-t", shell_pane, "#{pane_dead}"]
        ) != ["1"]:
            time.sleep(0.1)
    after = run(sane_ctx, shell_pane, 'echo "$X"; pwd')
    assert (after["status"], after["shell_restarted"]) == ("completed", True)
    assert after["output"] != f"1\n{tmp_path}\n"
    assert run(sane_ctx, shell_pane, "true")["shell_restarted"] is False


# Every shell sane drives as the new one: ksh93 catches the runner's signal itself
# (the run came back `waiting_input` at its prompt, the pane `pane_busy`), and fish
# could not answer a POSIX status probe (the run stayed `running`).
EXEC_SHELLS = [
    "exec bash --norc --noprofile",
    "exec zsh -f",
    "exec env PS1='> ' dash",
    "exec ksh93",
    "exec mksh",
    "exec busybox ash",
    "exec yash --norcfile --noprofile",
    "exec posh",
    "exec fish --no-config",
]


@pytest.mark.parametrize("new_shell", EXEC_SHELLS)
def test_a_run_that_execs_a_new_shell(
    sane_ctx: Context, shell_pane: str, tmp_path: Path, new_shell: str
) -> None:
    run(sane_ctx, shell_pane, f"cd {tmp_path}; X=1")
    r = run(sane_ctx, shell_pane, new_shell, timeout=10)
    # The run's shell is gone (replaced): not waiting_input at the new shell's prompt.
    assert (r["status"], r["exit_code"], r["shell_exited"]) == ("lost", None, True)
    after = run(sane_ctx, shell_pane, 'echo "[$X]"; pwd')
    assert (after["status"], after["shell_restarted"]) == ("completed", True)
    assert after["output"] == f"[]\n{tmp_path}\n"  # exec keeps the cwd, not the variables
    assert run(sane_ctx, shell_pane, "echo next")["output"] == "next\n"


@pytest.mark.parametrize("shell", ["bash", "dash", "zsh", "ksh93", "mksh", "ash", "yash", "posh"])
def test_the_takeover_records_the_shells_exec_image(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str
) -> None:
    """The image each POSIX shell prints at takeover (parameter expansion alone) is the
    one sane reads from /proc for the same process: a mismatch would take the runner
    waiting in a `read` for a new shell and type the status probe into that `read`."""
    from sane import procfs

    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "echo hi")["output"] == "hi\n"
    pid = tmux_server.run("display", "-p", "-t", pane, "#{pane_pid}").strip()
    recorded = tmux_server.run("show", "-pqv", "-t", pane, "@sane_shell_image").strip()
    assert recorded and int(recorded) == procfs.image(pid)


@pytest.mark.parametrize(
    "start,new_shell",
    [
        ("ksh93", "exec ksh93"),  # `exec "$SHELL" -l` of a ksh93 user: the same program
        ("yash", "exec ksh93"),
        ("fish", "exec bash --norc --noprofile"),
        ("fish", "exec ksh93"),
    ],
)
def test_a_run_that_execs_a_new_shell_in_other_shells(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path, start: str, new_shell: str
) -> None:
    """The run's shell replaced by one that catches the runner's signal itself (ksh93:
    only the exec image, recorded at takeover, tells it from the runner), or by a POSIX
    shell in a fish pane (the status probe in the new shell's syntax)."""
    pane = tmux_server.new_pane(start)
    run(sane_ctx, pane, f"cd {tmp_path}")
    r = run(sane_ctx, pane, new_shell, timeout=10)
    assert (r["status"], r["exit_code"], r["shell_exited"]) == ("lost", None, True), r
    after = run(sane_ctx, pane, "pwd")
    assert (after["status"], after["shell_restarted"]) == ("completed", True), after
    assert after["output"] == f"{tmp_path}\n"
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_a_fish_run_that_execs_a_new_fish(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """`exec fish` in fish: the new fish keeps the runner's /dev/zero, so the run came
    back `waiting_input` at the new fish's prompt and the pane stayed `pane_busy`
    (issue #14 Measured 8, found again by the session-12 sweep)."""
    pane = tmux_server.new_pane("fish")
    run(sane_ctx, pane, f"cd {tmp_path}; set -g X 1")
    r = run(sane_ctx, pane, "exec fish --no-config", timeout=10)
    assert (r["status"], r["exit_code"], r["shell_exited"]) == ("lost", None, True), r
    after = run(sane_ctx, pane, 'echo "[$X]"; pwd')
    assert (after["status"], after["shell_restarted"]) == ("completed", True), after
    assert after["output"] == f"[]\n{tmp_path}\n"
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


# The same over ssh: the pane's shell is the login shell of a loopback sshd's root.
@pytest.mark.parametrize("ending", ["exit 3", "kill -9 $$", "TMOUT=1"])
def test_over_ssh_the_run_after_the_shell_died_says_it_is_new(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path, ending: str
) -> None:
    """The remote shell ends (the ssh connection with it): the next run on that server
    reconnects and says the shell is new (its cd and variables are gone)."""
    register(sane_ctx.home, ssh_fleet)
    pane = pane_for_server(sane_ctx, "s1")
    first = run(sane_ctx, pane, f"cd {tmp_path}; X=1")
    assert first["status"] == "completed"
    ended = run(sane_ctx, pane, ending, timeout=10)
    if ending == "TMOUT=1":  # the shell logs itself out, idle at its prompt
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sane_ctx.tmux(
            ["display", "-p", "-t", pane, "#{pane_dead}"]
        ) != ["1"]:
            time.sleep(0.1)
    else:
        assert ended["shell_exited"] is True, ended
    after = run(sane_ctx, pane_for_server(sane_ctx, "s1"), 'echo "[$X]"; pwd')
    assert (after["status"], after["shell_restarted"]) == ("completed", True), after
    assert not after["output"].startswith("[1]")
    again = run(sane_ctx, pane_for_server(sane_ctx, "s1"), "true")
    assert again["shell_restarted"] is False


@pytest.mark.parametrize(
    "new_shell", ["exec bash --norc --noprofile", 'exec "$SHELL" -l', "exec ksh93"]
)
def test_over_ssh_a_run_that_execs_a_new_shell(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path, new_shell: str
) -> None:
    register(sane_ctx.home, ssh_fleet)
    pane = pane_for_server(sane_ctx, "s2")
    run(sane_ctx, pane, f"cd {tmp_path}; X=1")
    r = run(sane_ctx, pane, new_shell, timeout=10)
    assert (r["status"], r["exit_code"], r["shell_exited"]) == ("lost", None, True), r
    # sane knows the runner went with the old shell (ssh, the pane's process, lives on):
    # the next run takes the new shell over instead of typing the hold key into an
    # editor without sane's widget (seen: `770~` left there, refused as typed text).
    state = sane_ctx.pane_state(pane)
    assert (state.runner_installed, state.shell_new) == (False, True)
    after = run(sane_ctx, pane_for_server(sane_ctx, "s2"), 'echo "[$X]"; pwd')
    assert (after["status"], after["shell_restarted"]) == ("completed", True), after
    assert after["output"].startswith("[]\n")
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"
