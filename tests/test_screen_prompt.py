"""The prompt a screen-checked shell (mksh, ksh93, yash, busybox ash) shows when idle
is the one sane compares its command line against, whichever way the last run ended
(issue #14): a run finished by run wait, run input or run interrupt renews it as one
followed to its end does, so an empty line is never refused, and typed text still
always is. Local panes and each shell as the login shell of a loopback sshd user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.ops.run.resume import run_input, run_interrupt, run_wait
from sane.poll import poll
from sane.testing.fleet import Fleet
from sane.testing.fleet import Server as FleetServer
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import run
from .test_shells import as_a_user_has_it, login_pane, one_server_per_shell

SCREEN = ["mksh", "ksh93", "yash", "ash"]


def _with_a_yashrc(fleet: Fleet, srv: FleetServer, shell: str) -> None:
    (srv.home / ".yashrc").write_text("")  # else yash loads a sample config


@pytest.fixture(scope="module")
def screen_logins() -> Iterator[dict[str, tuple[Fleet, str]]]:
    """One sshd per screen-checked shell, root's login shell there."""
    yield from one_server_per_shell(SCREEN, _with_a_yashrc)


@pytest.fixture(params=["local", "login"])
def screen_pane(
    request: pytest.FixtureRequest, tmux_server: TmuxTestServer, sane_ctx: Context
) -> Iterator[str]:
    shell = request.node.callspec.params["shell"]
    if request.param == "local":
        yield tmux_server.new_pane(shell)
        return
    fleet, name = request.getfixturevalue("screen_logins")[shell]
    yield login_pane(sane_ctx, fleet, name)


def _typed_text_still_refused(ctx: Context, tmux: TmuxTestServer, pane: str) -> None:
    """Text a person leaves on the line is refused and named exactly; clear_input
    discards it."""
    typed = "echo PERSON-RAN #"
    tmux.run("send-keys", "-t", pane, "-l", typed)
    poll(lambda: typed in tmux.run("capture-pane", "-p", "-J", "-t", pane), 10.0)
    with pytest.raises(errors.PaneHasInput) as caught:
        run(ctx, pane, "echo x", timeout=20)
    assert caught.value.details["text"] == typed, caught.value.details
    r = run(ctx, pane, "echo x", clear_input=True, timeout=20)
    assert (r["status"], r["output"]) == ("completed", "x\n")


@pytest.mark.parametrize("shell", SCREEN)
def test_a_run_ended_by_a_later_call_renews_the_prompt(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    screen_pane: str,
    shell: str,
    tmp_path: Path,
) -> None:
    pane = screen_pane
    one, two, three = (tmp_path / n for n in ("one", "two", "three"))
    for d in (one, two, three):
        d.mkdir()
    # A prompt with the working directory in it (its last part: a long prompt makes
    # yash and busybox ash, started 80 wide, wrap the typed text themselves).
    cwd_prompt = "PS1='${PWD##*/}> '"
    assert run(sane_ctx, pane, cwd_prompt, timeout=20)["exit_code"] == 0
    # cd in a run that timed out, finished by run wait: the next run runs.
    r = run(sane_ctx, pane, f"cd {one}; sleep 1", timeout=0.1)
    assert r["status"] == "running", r
    assert run_wait(sane_ctx, r["run_id"], timeout=30)["status"] == "completed"
    r = run(sane_ctx, pane, "pwd", timeout=20)
    assert (r["status"], r["output"]) == ("completed", f"{one}\n"), r
    # PS1 changed by a run that timed out.
    r = run(sane_ctx, pane, "sleep 1; PS1='changed> '", timeout=0.1)
    assert r["status"] == "running", r
    assert run_wait(sane_ctx, r["run_id"], timeout=30)["status"] == "completed"
    assert run(sane_ctx, pane, "echo a", timeout=20)["output"] == "a\n"
    assert run(sane_ctx, pane, cwd_prompt, timeout=20)["exit_code"] == 0
    # cd, then a command interrupted by run interrupt.
    r = run(sane_ctx, pane, f"cd {two}; sleep 30", timeout=0.3)
    assert r["status"] == "running", r
    assert run_interrupt(sane_ctx, r["run_id"])["status"] == "interrupted"
    assert run(sane_ctx, pane, "pwd", timeout=20)["output"] == f"{two}\n"
    # cd, then a prompt answered by run input.
    r = run(sane_ctx, pane, f"cd {three}; printf 'Name? '; read a; echo hi $a", timeout=20)
    assert r["status"] == "waiting_input", r
    done = run_input(sane_ctx, r["run_id"], "Ann", timeout=20)
    assert (done["status"], done["output"]) == ("completed", "Ann\nhi Ann\n"), done
    assert run(sane_ctx, pane, "pwd", timeout=20)["output"] == f"{three}\n"
    # cd in a run that timed out and then ended with nobody waiting for it.
    r = run(sane_ctx, pane, f"cd {one}; sleep 1; echo o''ver", timeout=0.1)
    assert r["status"] == "running", r
    poll(lambda: "over" in tmux_server.run("capture-pane", "-p", "-t", pane).split(), 30.0)
    r = run(sane_ctx, pane, "pwd", timeout=20)
    assert (r["status"], r["output"]) == ("completed", f"{one}\n"), r
    _typed_text_still_refused(sane_ctx, tmux_server, pane)


CONTINUATION_SHELLS = ["bash", "zsh", "fish", "dash", "posh", "mksh", "ksh93", "yash", "ash"]


@pytest.fixture(scope="module")
def continuation_logins() -> Iterator[dict[str, tuple[Fleet, str]]]:
    """One sshd per shell, root's login shell there, as a user has it."""
    yield from one_server_per_shell(CONTINUATION_SHELLS, as_a_user_has_it)


@pytest.mark.parametrize("where", ["local", "login"])
@pytest.mark.parametrize("shell", CONTINUATION_SHELLS)
def test_a_continuation_is_refused_and_cleared_never_run(
    request: pytest.FixtureRequest,
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    shell: str,
    where: str,
    tmp_path: Path,
) -> None:
    """A person typed `touch MARK 'abc` and Enter: the shell waits for the closing
    quote (PS2, fish: a second line in its buffer). The next run is refused; with
    clear_input the continuation is cancelled, none of it run, and sane's command
    runs alone. Before, the screen shells typed sane's line into it on clear_input
    (the run `running`, the pane busy), and bash, zsh, dash and posh without it. Runs
    whose long command is pasted (a heredoc: PS2s drawn, dash's on the prompt's line)
    are not taken for a continuation."""
    if where == "local":
        pane = tmux_server.new_pane(shell)
    else:
        fleet, name = request.getfixturevalue("continuation_logins")[shell]
        pane = login_pane(sane_ctx, fleet, name)
    assert run(sane_ctx, pane, "echo warm", timeout=20)["output"] == "warm\n"
    for pasted in (": " + "x" * 1500, "printf '> '; : " + "x" * 1500):
        assert run(sane_ctx, pane, pasted, timeout=20)["status"] == "completed"
        assert run(sane_ctx, pane, "echo warm", timeout=20)["output"] == "warm\n"
    mark = tmp_path / "ran"
    tmux_server.run("send-keys", "-t", pane, "-l", f"touch {mark} 'abc")
    tmux_server.run("send-keys", "-t", pane, "Enter")

    def waiting() -> bool:  # the line after the person's shows the continuation
        rows = tmux_server.run("capture-pane", "-p", "-t", pane).rstrip().splitlines()
        return len(rows) >= 2 and rows[-2].endswith("'abc")

    poll(waiting, 10.0)

    def waiting_with(typed: str) -> bool:  # the continuation's line shows `typed`
        rows = tmux_server.run("capture-pane", "-p", "-t", pane).rstrip().splitlines()
        return len(rows) >= 2 and rows[-2].endswith("'abc") and rows[-1].endswith(typed)

    with pytest.raises(errors.PaneHasInput) as refused:
        run(sane_ctx, pane, "echo x", timeout=5)
    if shell == "zsh":  # the whole construct is named, and put back on the line
        assert refused.value.details["text"] == f"touch {mark} 'abc\n"
        assert poll(
            lambda: f"touch {mark} 'abc" in tmux_server.run("capture-pane", "-p", "-t", pane), 10.0
        )
    if shell == "bash":  # the continuation stays as it was, typed text and all
        assert refused.value.details["continuation"] is True, refused.value.details
        tmux_server.run("send-keys", "-t", pane, "-l", "def")
        poll(lambda: waiting_with("def"), 10.0)
        with pytest.raises(errors.PaneHasInput):
            run(sane_ctx, pane, "echo " + "y" * 2000, timeout=5)  # a paste, too
        poll(lambda: waiting_with("def"), 10.0)
    r = run(sane_ctx, pane, "echo x", clear_input=True, timeout=10)
    assert (r["status"], r["output"]) == ("completed", "x\n"), r
    assert run(sane_ctx, pane, "echo again", timeout=10)["output"] == "again\n"
    assert not mark.exists()


@pytest.mark.parametrize("shell", SCREEN)
def test_tmux_answers_to_queries_never_run_and_never_wedge(
    sane_ctx: Context, tmux_server: TmuxTestServer, screen_pane: str, shell: str, tmp_path: Path
) -> None:
    """A run prints queries, XTVERSION last; the next run, typed at once, is exact and
    runs alone, and the prompt recorded after the answers were cleared is the one a
    person's typed text is still told from. Measured before: busybox ash kept
    `cP>|tmux 3.3a` (its key reader had dropped the rest, and sane's clearing keys
    with it) and ran it with the next line (`ash: cP: not found`, and an empty file
    `tmux` from its `>|`), the run `running`, the pane busy; yash (vi mode) read the
    answers as vi commands and garbled or swallowed the next line."""
    pane, work = screen_pane, tmp_path / "work"
    work.mkdir()
    assert run(sane_ctx, pane, f"cd {work}", timeout=20)["exit_code"] == 0
    queries = r"\033[6n\033[c\033[>c\033[5n\033[18t\033[>q"
    r = run(sane_ctx, pane, f"printf '{queries}'; echo done", timeout=20)
    assert (r["status"], r["output"]) == ("completed", "done\n"), r
    nxt = run(sane_ctx, pane, "echo next", timeout=20)
    assert (nxt["status"], nxt["output"]) == ("completed", "next\n"), nxt
    assert sorted(p.name for p in work.iterdir()) == []
    _typed_text_still_refused(sane_ctx, tmux_server, pane)


@pytest.mark.parametrize("shell", CONTINUATION_SHELLS)
def test_a_continuation_ended_by_a_person_refuses_nothing(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str
) -> None:
    """A continuation the person finished, or cancelled with C-c, leaves nothing that
    refuses the next run (bash: the flag its PS2 set is cleared by PS1, also with
    sane's hook gone from PROMPT_COMMAND)."""
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "PROMPT_COMMAND=true", timeout=20)["status"] == "completed"

    def shows(text: str) -> bool:
        return text in tmux_server.run("capture-pane", "-p", "-t", pane)

    tmux_server.run("send-keys", "-t", pane, "-l", "echo 'fin")
    tmux_server.run("send-keys", "-t", pane, "Enter")
    poll(lambda: shows("'fin"), 10.0)
    tmux_server.run("send-keys", "-t", pane, "-l", "ished'")
    tmux_server.run("send-keys", "-t", pane, "Enter")
    poll(lambda: shows("fin\nished\n"), 10.0)
    assert run(sane_ctx, pane, "echo x", timeout=20)["output"] == "x\n"
    tmux_server.run("send-keys", "-t", pane, "-l", "echo 'cancel")
    tmux_server.run("send-keys", "-t", pane, "Enter")
    poll(lambda: shows("'cancel"), 10.0)
    tmux_server.run("send-keys", "-t", pane, "C-c")
    # The shell is back at its prompt: what a person would wait for before typing.
    poll(lambda: tmux_server.run("capture-pane", "-p", "-t", pane).rstrip().endswith("$"), 10.0)
    assert run(sane_ctx, pane, "echo y", timeout=20)["output"] == "y\n"
