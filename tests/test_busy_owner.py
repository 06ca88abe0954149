"""One owner per busy flag (issue #16 item 9 and 10): the pane's ``@sane_run`` names
the run, its starter and its home, and only a run that is provably over loses it.

Each case typed into a running command, cleared another run's flag, or failed with
``internal_error`` on the code before."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.holder import Holder
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_interrupt, run_wait
from sane.testing import retry_until
from sane.testing.pytest_plugin import TmuxTestServer, run_process


def _start_handed_over(env: dict[str, str], home: Path, pane: str, command: str) -> str:
    """A run started by another process that handed it over and exited."""
    proc = run_process(
        [
            sys.executable,
            "-m",
            "sane.cli.main",
            "run-command",
            "--pane",
            pane,
            "--timeout",
            "0.5",
            command,
        ],
        {**env, "SANE_HOME": str(home)},
    )
    doc = json.loads(proc.stdout)
    assert doc["status"] == "running", proc.stdout + proc.stderr
    return str(doc["run_id"])


def _flag(tmux_server: TmuxTestServer, pane: str) -> str:
    return tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_run}").strip()


def test_a_second_home_never_types_into_the_first_homes_run(
    tmux_server: TmuxTestServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    pane = tmux_server.new_pane()
    first, second = tmp_path / "home-a", tmp_path / "home-b"
    proof = tmp_path / "typed-into-the-run"
    run_id = _start_handed_over(cli_env, first, pane, "sleep 30")
    flag = _flag(tmux_server, pane)
    assert Holder.parse(flag).home == str(first)
    with Context(tmux_server.server, home=second) as other:
        with pytest.raises(errors.PaneBusy) as caught:
            run_command(other, f"touch {proof}", pane=pane, options=RunOptions(timeout=2))
        assert caught.value.details["run_id"] == run_id
    assert _flag(tmux_server, pane) == flag and not proof.exists()
    with Context(tmux_server.server, home=first) as owner:
        ended = run_interrupt(owner, run_id)
        assert ended["status"] == "interrupted"
    with Context(tmux_server.server, home=second) as other:  # now it is over: free
        assert run_command(other, "echo free", pane=pane)["output"] == "free\n"


def test_a_corrupt_record_neither_frees_the_pane_nor_crashes(
    tmux_server: TmuxTestServer, cli_env: dict[str, str], sane_home: Path, sane_ctx: Context
) -> None:
    pane = tmux_server.new_pane()
    run_id = _start_handed_over(cli_env, sane_home, pane, "sleep 30")
    flag = _flag(tmux_server, pane)
    record = sane_home / "runs" / run_id / "record.json"
    good = record.read_text()
    record.write_text("[]")
    # Checking whether that run is over raised AttributeError: internal_error, and the
    # error path cleared the running command's flag.
    with pytest.raises(errors.PaneBusy):
        run_command(sane_ctx, "echo no", pane=pane, options=RunOptions(timeout=2))
    assert _flag(tmux_server, pane) == flag
    with pytest.raises(errors.StateError) as caught:
        run_wait(sane_ctx, run_id, timeout=0)
    assert "corrupt" in caught.value.message
    record.write_text(json.dumps({k: v for k, v in json.loads(good).items() if k != "pane"}))
    with pytest.raises(errors.StateError):  # a KeyError before
        run_wait(sane_ctx, run_id, timeout=0)
    record.write_text(good)
    assert run_interrupt(sane_ctx, run_id)["status"] == "interrupted"


def test_a_record_of_the_wrong_shape_is_state_invalid_naming_the_file_and_field(
    sane_ctx: Context, sane_home: Path
) -> None:
    """Every field is checked against the record's type on load, the ended run's too:
    a ``final`` without its fields was a KeyError (internal_error) in ``run wait``."""
    started = run_command(sane_ctx, "sleep 30", options=RunOptions(timeout=0.3))
    run_id = started["run_id"]
    record = sane_home / "runs" / run_id / "record.json"
    good = json.loads(record.read_text())
    ended = {"status": "completed", "exit_code": 0, "shell_exited": False, "duration_ms": 1.0}
    for field, value in [
        ("final", {}),
        ("final", {**ended, "status": "finished"}),
        ("final", {**ended, "exit_code": "0"}),
        ("tokens", [1]),
        ("shell", 5),
        ("started", True),
        ("owner", {"step": 2}),
    ]:
        record.write_text(json.dumps({**good, field: value}))
        with pytest.raises(errors.StateError) as caught:
            run_wait(sane_ctx, run_id, timeout=0)
        assert str(record) in caught.value.message and field in caught.value.message, field
        assert caught.value.details["path"] == str(record)
    # A record an older sane wrote without the keys added since is still followed.
    older = {k: v for k, v in good.items() if k not in ("max_output", "shell")}
    record.write_text(json.dumps(older))
    assert run_interrupt(sane_ctx, run_id)["status"] == "interrupted"


def test_an_old_corrupt_record_does_not_break_later_hand_overs(
    sane_ctx: Context, sane_home: Path
) -> None:
    old = sane_home / "runs" / "rdeadbeef0000"
    old.mkdir(parents=True)
    (old / "record.json").write_text("[]")
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(old / "record.json", (week_ago, week_ago))
    result = run_command(sane_ctx, "sleep 5", options=RunOptions(timeout=0.3))
    assert result["status"] == "running"  # was internal_error, the run id lost
    assert run_interrupt(sane_ctx, result["run_id"])["status"] == "interrupted"
    assert (old / "record.json").exists()  # not ours to delete: nobody knows its state


def test_a_run_whose_recording_died_frees_its_pane_once_its_command_is_over(
    tmux_server: TmuxTestServer,
    cli_env: dict[str, str],
    sane_home: Path,
    sane_ctx: Context,
    tmp_path: Path,
) -> None:
    """The recording of a handed-over run dies (its writer killed, as a full SANE_HOME
    ends it) and the command ends with nobody watching. Every later run got
    ``pane_busy`` until someone called ``run wait``: a failure to record left the busy
    flag set. Now the next run takes the pane once the kernel shows the shell at its
    prompt, and the old run is ended honestly: ``lost`` (what it printed after its
    recording died is not known, and not claimed)."""
    pane = tmux_server.new_pane()
    gate = tmp_path / "gate"
    run_id = _start_handed_over(
        cli_env,
        sane_home,
        pane,
        f"echo before; while [ ! -e {gate} ]; do sleep 0.05; done; echo after",
    )
    stream = str(sane_home / "runs" / run_id / "stream")
    writers = _writers(stream)
    assert writers, "the run's recording should be running"
    for pid in writers:
        os.kill(pid, signal.SIGKILL)
    gate.touch()
    retry_until(
        lambda: "after" in tmux_server.run("capture-pane", "-p", "-t", pane),
        timeout=10,
        message="the command should end",
    )
    retry_until(  # tmux closes a pipe on its first failed write
        lambda: tmux_server.run("display-message", "-p", "-t", pane, "#{pane_pipe}").strip() == "0",
        timeout=10,
        message="tmux should notice the recording's end",
    )
    proof = tmp_path / "next-ran"
    result = run_command(
        sane_ctx, f"touch {proof}; echo next", pane=pane, options=RunOptions(timeout=10)
    )
    assert result["status"] == "completed" and result["output"] == "next\n", result
    assert proof.exists()
    old = run_wait(sane_ctx, run_id, timeout=0)
    assert old["status"] == "lost", old
    assert "next" not in old["output"], old  # the next run's output is its own


def test_a_running_command_keeps_its_pane_though_its_recording_died(
    tmux_server: TmuxTestServer,
    cli_env: dict[str, str],
    sane_home: Path,
    sane_ctx: Context,
    tmp_path: Path,
) -> None:
    """The same dead recording while the command still runs: the pane stays busy (its
    command would take the next run's line as input), and nothing is typed."""
    pane = tmux_server.new_pane()
    run_id = _start_handed_over(cli_env, sane_home, pane, "sleep 30")
    stream = str(sane_home / "runs" / run_id / "stream")
    writers = _writers(stream)
    assert writers, "the run's recording should be running"
    for pid in writers:
        os.kill(pid, signal.SIGKILL)
    proof = tmp_path / "typed-into-the-run"
    with pytest.raises(errors.PaneBusy):
        run_command(sane_ctx, f"touch {proof}", pane=pane, options=RunOptions(timeout=2))
    assert not proof.exists()
    assert run_interrupt(sane_ctx, run_id)["status"] in ("interrupted", "lost")


def _writers(path: str) -> list[int]:
    """The processes holding ``path`` open (the run's recording: tmux's pipe-pane
    ``cat``, whose argv does not name the file)."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    found.append(int(pid))
                    break
            except OSError:
                continue
    return found


def _run(ctx: Context, pane: str, command: str) -> dict[str, object]:
    return dict(run_command(ctx, command, pane=pane, options=RunOptions(timeout=30)))


def _running_sleep(tmux_server: TmuxTestServer, pane: str, seconds: int) -> None:
    """A person's ``sleep`` running in the pane (its shell not at its prompt)."""
    tmux_server.run("send-keys", "-t", pane, "-l", f"sleep {seconds}")
    tmux_server.run("send-keys", "-t", pane, "Enter")

    def current() -> str:
        return tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}")

    retry_until(lambda: current().strip() == "sleep", 30)


def _orphan_flag(tmux_server: TmuxTestServer, sane_ctx: Context, pane: str) -> None:
    """Flag ``pane`` as a run whose sane process died inside its first call (no record,
    its pid gone), as a kill -9 of create-file or run-command leaves it."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    holder = Holder("rdeadbeef0001", dead.pid, os.path.abspath(sane_ctx.home_dir))
    tmux_server.run("set-option", "-p", "-t", pane, "@sane_run", holder.value)


def test_a_dead_runs_command_that_ends_a_moment_later_frees_the_pane(
    sane_ctx: Context, tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flag of a run whose process died unrecorded, its command still running (not
    waiting for input) when the next run comes: that command is watched a moment for
    its end (ORPHAN_RUNNING_SECONDS), then the pane is taken. Before, pane_busy at once
    though the command ended a moment later (create-file's script after its idle
    timer: test_kill_9_of_create_file_at_random_points failed so at load 10-25)."""
    from sane.ops.run import busy

    monkeypatch.setattr(busy, "ORPHAN_RUNNING_SECONDS", 60.0)  # a loaded machine's moment
    pane = tmux_server.new_pane("bash")
    assert _run(sane_ctx, pane, "echo warm")["output"] == "warm\n"
    _running_sleep(tmux_server, pane, 1)
    _orphan_flag(tmux_server, sane_ctx, pane)
    r = _run(sane_ctx, pane, "echo after")
    assert (r["status"], r["output"]) == ("completed", "after\n"), r


def test_a_dead_runs_command_still_running_keeps_its_pane(
    sane_ctx: Context, tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """...and one that goes on past that moment keeps the pane: pane_busy naming the
    dead owner, nothing typed into the command."""
    from sane.ops.run import busy

    monkeypatch.setattr(busy, "ORPHAN_RUNNING_SECONDS", 0.5)
    pane = tmux_server.new_pane("bash")
    assert _run(sane_ctx, pane, "echo warm")["output"] == "warm\n"
    _running_sleep(tmux_server, pane, 60)
    _orphan_flag(tmux_server, sane_ctx, pane)
    with pytest.raises(errors.PaneBusy) as caught:
        _run(sane_ctx, pane, "echo after")
    assert caught.value.details.get("owner_died") is True, caught.value.details
    cmd = tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}")
    assert cmd.strip() == "sleep"
