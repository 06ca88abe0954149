"""A process that lets go of tmux while other threads follow runs (its context closed by
a Ctrl-C or an error in the main thread) decides nothing about those runs: they go on
in their panes, and a later process finds them as they really are.

Before, the follower saw its stream closed and ended the run as ``lost``; a deploy's
step saved that ending in its record, so the rollback journalled the step lost, forgot
its run while the command still ran, and its undo met ``pane_busy`` (owner died): seen
in CI, test_ctrl_c_during_a_deploy_prints_its_id (session 12)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions, new_run_id
from sane.ops.run.record import load_record
from sane.ops.run.resume import run_wait
from sane.poll import poll
from sane.testing.pytest_plugin import TmuxTestServer


def _follow_in_thread(
    ctx: Context, pane: str, command: str, opts: RunOptions
) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def work() -> None:
        try:
            run_command(ctx, command, pane=pane, options=opts)
        except BaseException as exc:  # what the follower ended with, for the test
            raised.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, raised


@pytest.mark.parametrize("durable", [True, False])
def test_a_run_followed_while_the_context_closes_is_not_ended(
    tmux_server: TmuxTestServer, sane_home: Path, tmp_path: Path, durable: bool
) -> None:
    pane = tmux_server.new_pane()
    started, go = tmp_path / "started", tmp_path / "go"
    command = f"touch {started}; until [ -e {go} ]; do sleep 0.05; done; echo finished; (exit 3)"
    run_id = new_run_id()
    ctx = Context(tmux_server.server, home=sane_home)
    thread, raised = _follow_in_thread(
        ctx, pane, command, RunOptions(timeout=60, run_id=run_id, durable=durable)
    )
    assert poll(started.exists, 30), "the command never started"
    ctx.close()  # the main thread lets go, the follower still at work
    thread.join(30)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], errors.Detached), raised
    flag = tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_run}").strip()
    assert flag.startswith(run_id), flag  # the pane stays the run's
    if not durable:
        return  # nothing recorded it: the flag's owner is this process (see test_busy_owner)
    assert load_record(Context(tmux_server.server, home=sane_home), run_id).get("final") is None
    go.touch()
    with Context(tmux_server.server, home=sane_home) as later:
        ended = run_wait(later, run_id, timeout=30)
    assert (ended["status"], ended["exit_code"]) == ("completed", 3), ended
    assert ended["output"].endswith("finished\n"), ended


def test_a_command_sent_after_letting_go_raises_detached(tmux_server: TmuxTestServer) -> None:
    with Context(tmux_server.server) as ctx:
        pane = tmux_server.new_pane()
        client = ctx.client(ctx.pane_state(pane).session_id)
        assert client.command("display-message -p ok") == ["ok"]
        ctx.close()
        with pytest.raises(errors.Detached):
            client.command("display-message -p late")


def test_a_client_tmux_dropped_still_reports_a_tmux_error(tmux_server: TmuxTestServer) -> None:
    """Only this process's own letting go is ``Detached``: a client closed otherwise
    (tmux gone, the hub swapping it) fails as before, and runs followed through it are
    ended as their evidence says."""
    with Context(tmux_server.server) as ctx:
        pane = tmux_server.new_pane()
        client = ctx.client(ctx.pane_state(pane).session_id)
        client.close()
        assert not client.detached
        with pytest.raises(errors.TmuxError):
            client.command("display-message -p late")
