"""A warm run types with a check of the pane's state instead of reading it first
(issue #14, Performance: one tmux round trip less per run). The state this process read
before is compared by tmux itself, whole, in the command that claims the pane and types
(``sane.tmux.panes.if_unchanged``); any change made meanwhile by someone else (another
sane process, a person, the shell's death) means nothing is claimed or typed and the
run goes on from a fresh read, as before. Real tmux, real shells; the "someone else" is
a second Context (another process's view) or keys sent with tmux as a person types."""

from __future__ import annotations

from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.poll import poll
from sane.testing.pytest_plugin import SHELLS, TmuxTestServer
from sane.tmux import panes
from sane.tmux.command import TmuxServer

from .conftest import run, sent_lines


def _other(tmux_server: TmuxTestServer, tmp_path: Path) -> Context:
    """Another process's view of the same tmux server (its own control client)."""
    return Context(TmuxServer(tmux_server.socket_name), home=tmp_path / "other-home")


def _warm(ctx: Context, tmux_server: TmuxTestServer) -> str:
    """A bash pane whose state (the runner installed) this process has read: its next
    run is typed with the check, and would be typed blind without it."""
    pane = tmux_server.new_pane("bash")
    for word in ("takeover", "read"):
        assert run(ctx, pane, f"echo {word}")["output"] == f"{word}\n"
    return pane


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash"])
def test_a_warm_run_reads_no_state_before_typing(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tmux command lines per warm run: the checked claim-and-type, the release.
    (Before: a display-message of the pane's state came first, three lines.)"""
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "echo one")["output"] == "one\n"
    assert run(sane_ctx, pane, "echo two")["output"] == "two\n"
    lines = sent_lines(sane_ctx, pane, monkeypatch)
    result = run(sane_ctx, pane, "echo three; (exit 4)")
    assert (result["output"], result["exit_code"]) == ("three\n", 4)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"if-shell -F -t {pane} "), lines
    assert not any(panes.STATE_FORMAT in line.split("'")[0] for line in lines)


def test_a_shell_replaced_by_another_process_is_taken_over_again(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """Another sane process ran ``exec bash`` in the pane (its runner went with the old
    shell): this process's next run must not type the hold key into the new bash, whose
    readline has no widget for it; it takes the new shell over and says so."""
    pane = _warm(sane_ctx, tmux_server)
    assert run(sane_ctx, pane, "X=1; echo $X")["output"] == "1\n"
    with _other(tmux_server, tmp_path) as other:
        gone = run(other, pane, "exec bash --norc --noprofile", timeout=10)
        assert (gone["status"], gone["shell_exited"]) == ("lost", True), gone
    after = run(sane_ctx, pane, 'echo "[${X-}]"')
    assert (after["status"], after["exit_code"], after["output"]) == ("completed", 0, "[]\n")
    assert after["shell_restarted"] is True, after
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_a_shell_of_another_kind_a_person_started_is_taken_over(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """A person started fish in the bash pane: the pane's state says so (its program),
    and the run gets fish's own runner. Typed with the state this process knew (bash's),
    its POSIX line would be a syntax error in fish and the run would never end."""
    pane = _warm(sane_ctx, tmux_server)
    tmux_server.run("send-keys", "-t", pane, "-l", SHELLS["fish"])
    tmux_server.run("send-keys", "-t", pane, "Enter")
    assert poll(
        lambda: (
            tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}").strip()
            == "fish"
        ),
        10.0,
    )
    after = run(sane_ctx, pane, "echo in $version", timeout=10)
    assert after["status"] == "completed", after
    assert after["output"].startswith("in ") and after["output"] != "in \n", after


def test_a_pane_whose_shell_a_person_ended_is_respawned(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """The shell ended by a person's ``exit`` (the pane dead, kept by remain-on-exit):
    the next run respawns it and says the shell is new, as with a fresh read."""
    pane = _warm(sane_ctx, tmux_server)
    assert run(sane_ctx, pane, "Y=2; echo $Y")["output"] == "2\n"
    tmux_server.run("send-keys", "-t", pane, "exit", "Enter")
    assert poll(
        lambda: tmux_server.run("display-message", "-p", "-t", pane, "#{pane_dead}").strip() == "1",
        10.0,
    )
    after = run(sane_ctx, pane, 'echo "[${Y-}]"', timeout=10)
    assert (after["status"], after["output"], after["shell_restarted"]) == (
        "completed",
        "[]\n",
        True,
    ), after


def test_a_pane_another_process_keeps_busy_is_refused_untouched(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """Another process's run goes on past its timeout (the pane busy with it): this
    process's run is refused pane_busy and types nothing into that run."""
    pane = _warm(sane_ctx, tmux_server)
    with _other(tmux_server, tmp_path) as other:
        long = run(other, pane, "read -r line; echo got:$line", timeout=0.3)
        assert long["status"] in ("running", "waiting_input"), long
        with pytest.raises(errors.PaneBusy):
            run(sane_ctx, pane, "echo intruder")
        from sane.ops.run.resume import run_input

        done = run_input(other, long["run_id"], "answer", timeout=10)
        assert done["output"].endswith("got:answer\n"), done
        assert "intruder" not in done["output"]


HAZARD = "a,b}c#{d}:e##f'g;h $HOME ~ #(false)"


def test_if_unchanged_compares_the_whole_state_exactly(tmux_server: TmuxTestServer) -> None:
    """Values holding a format's special characters compare equal while unchanged; any
    field changed (or the pane gone) runs none of the commands and says so."""
    pane = tmux_server.new_pane("dash")
    tmux_server.new_pane("dash")  # the session outlives the pane killed at the end
    server = tmux_server.server
    server.run("set-option", "-p", "-t", pane, panes.OPT_SHELL_NOTE, HAZARD)
    from sane.tmux.control import ControlClient

    def tmux(argv: list[str]) -> list[str]:
        out = server.run(*argv)
        return out.removesuffix("\n").split("\n")

    state, text = panes.read_state_text(tmux, pane)
    assert state.shell_note == HAZARD
    client = ControlClient(server, pane)
    try:

        def guarded(option: str) -> None:
            found = panes.if_unchanged(
                pane, panes.Unchanged(text, False), [f"set-option -p -t {pane} {option} 1"]
            )
            assert found is not None
            client.command(found[0], blocks=found[1])

        guarded("@sane_test_ran")
        assert server.run("show-options", "-p", "-v", "-t", pane, "@sane_test_ran") == "1\n"
        # Any client of the server may lock a wait-for channel named like sane's answer
        # (the answer was once that channel's error, which a lock took away, shifting
        # every later reply of the control client): the answer holds all the same.
        server.run("wait-for", "-L", panes.STATE_CHANGED)
        # One field changed: the shell note (one character), then the busy flag.
        for option, value in ((panes.OPT_SHELL_NOTE, HAZARD + "x"), (panes.OPT_RUN, "r:1:")):
            server.run("set-option", "-p", "-t", pane, option, value)
            with pytest.raises((errors.TmuxError, errors.PaneNotFound)) as caught:
                guarded("@sane_test_changed")
            assert panes.state_changed(caught.value), caught.value.message
            server.run("set-option", "-p", "-u", "-t", pane, option)
        server.run("set-option", "-p", "-t", pane, panes.OPT_SHELL_NOTE, HAZARD)
        guarded("@sane_test_again")  # the same state again: runs
        assert server.run("show-options", "-p", "-v", "-t", pane, "@sane_test_again") == "1\n"
        assert "@sane_test_changed" not in server.run("show-options", "-p", "-t", pane)
        # The client answers the next command as its own: no reply block was left over.
        assert client.command(f"display-message -p -t {pane} '#{{pane_id}}'") == [pane]
        server.run("kill-pane", "-t", pane)
        with pytest.raises(errors.SaneError) as gone:
            guarded("@sane_test_gone")
        assert panes.state_changed(gone.value), gone.value.message
    finally:
        client.close()


def _kept(ctx: Context) -> set[str]:
    """Every pane id this process keeps something for: a known state, a control
    client's count of its output or quiet mark."""
    kept = set(ctx.known_states)
    for client in ctx.hub.clients().values():
        kept |= client.panes_noted()
    return kept


def test_a_pane_found_gone_is_forgotten(sane_ctx: Context, tmux_server: TmuxTestServer) -> None:
    """A run that finds its pane gone drops what this process kept for it (a long-lived
    ``sane mcp`` kept one entry per pane it ever ran in: they never went)."""
    tmux_server.new_pane("dash")  # the session outlives the pane killed below
    pane = _warm(sane_ctx, tmux_server)
    assert pane in _kept(sane_ctx)
    tmux_server.run("kill-pane", "-t", pane)
    with pytest.raises(errors.PaneNotFound):
        run(sane_ctx, pane, "echo gone")
    assert pane not in _kept(sane_ctx)


def test_what_is_kept_per_pane_stays_bounded(
    sane_ctx: Context, tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many panes made, run in and killed by someone else in one Context (a long-lived
    MCP server): what it keeps per pane is swept once it has doubled, so it stays within
    twice the bound whatever the number of panes; the live pane's entry stays."""
    from sane.ops import context

    floor = 6
    monkeypatch.setattr(context, "SWEEP_FLOOR", floor, raising=False)
    monkeypatch.setattr(sane_ctx, "_sweep_at", floor, raising=False)
    keep = tmux_server.new_pane("dash")
    assert run(sane_ctx, keep, "echo kept")["output"] == "kept\n"
    most = 0
    for n in range(30):
        pane = tmux_server.new_pane("dash")
        assert run(sane_ctx, pane, f"echo {n}")["output"] == f"{n}\n"
        tmux_server.run("kill-pane", "-t", pane)
        most = max(most, len(_kept(sane_ctx)))
    assert most <= 2 * floor + 2, (most, _kept(sane_ctx))
    assert keep in _kept(sane_ctx)
    assert run(sane_ctx, keep, "echo still")["output"] == "still\n"


def test_panes_only_seen_printing_stay_bounded_through_warm_runs(
    sane_ctx: Context, tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived process running warm in one bash pane (no state read: nothing new
    known) while other panes of its session print and go: its control client counts
    each one's output, an entry that no read of this process adds. Those are swept
    too, so the sweep's check goes with every run, not only where a state is read
    (with the check moved to read_for_run, where a state is read, 31 were kept here)."""
    from sane.ops import context

    floor = 6
    monkeypatch.setattr(context, "SWEEP_FLOOR", floor, raising=False)
    monkeypatch.setattr(sane_ctx, "_sweep_at", floor, raising=False)
    keep = _warm(sane_ctx, tmux_server)
    client = sane_ctx.client(sane_ctx.pane_state(keep).session_id)
    most = 0
    for n in range(30):
        other = tmux_server.new_pane("dash")
        tmux_server.run("send-keys", "-t", other, "-l", f"echo printed-{n}\r")
        assert poll(lambda: other in client.panes_noted(), 30.0), other  # noqa: B023 (polled here)
        tmux_server.run("kill-pane", "-t", other)
        assert run(sane_ctx, keep, f"echo {n}")["output"] == f"{n}\n"
        most = max(most, len(_kept(sane_ctx)))
    assert most <= 2 * floor + 2, (most, _kept(sane_ctx))
    assert keep in _kept(sane_ctx)


def test_a_known_state_is_not_trusted_in_a_new_tmux_server(
    sane_ctx: Context, tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tmux server killed and started again on the same socket, inside one Context:
    pane ids start again at %0, so the new server's pane may have the id of a pane this
    process knew. Its known state is not typed against (not even as tmux's check: the
    run reads the new pane's state first), and the run is exact."""
    pane = _warm(sane_ctx, tmux_server)
    old = sane_ctx.known_states[pane][1]
    tmux_server.kill()
    tmux_server.start()
    while True:  # the same id again: %0 is the new session's pane, then one per window
        again = tmux_server.new_pane("bash")
        if again == pane:
            break
        assert int(again[1:]) < int(pane[1:]), (again, pane)
    # Something attaches this Context to the new server's session first (an MCP
    # list_panes, say): the known state's session id is in use again.
    assert sane_ctx.pane_state(pane).pane_id == pane
    lines = sent_lines(sane_ctx, pane, monkeypatch)
    result = run(sane_ctx, pane, "echo new; (exit 5)", timeout=10)
    assert (result["status"], result["output"], result["exit_code"]) == (
        "completed",
        "new\n",
        5,
    ), result
    checked = old.replace("#", "##").replace(",", "#,").replace("}", "#}")  # as in a format
    assert not any(checked in line for line in lines), lines
