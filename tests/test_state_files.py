"""State files under faults: concurrent writers, corrupt files, a full disk, read-only home.

The promise (sane/state.py): a reader sees the old file or the new one, never half;
a failure is a JSON error naming the file and the cause; nothing already stored is
lost; no temp file is left behind. The full disk and the read-only home are real: a
small tmpfs mounted for the test (skipped with the reason when mount is refused).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sane import errors
from sane.fleet.health import record
from sane.fleet.registry import Registry, Server
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_wait
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli


def leftovers(home: Path) -> list[str]:
    """Temp files write_atomic would leave if it failed half-way."""
    return sorted(str(p.relative_to(home)) for p in home.rglob(".*.tmp"))


# -- concurrent writers, several processes ------------------------------------------------


def _add_then_rename(home: str, index: int) -> None:
    registry = Registry(Path(home))
    for round_ in range(5):
        registry.add(Server(name=f"tmp{index}-{round_}", host="10.0.0.1"))
        registry.remove(f"tmp{index}-{round_}")
    registry.add(Server(name=f"keep{index}", host=f"10.0.1.{index}"))


def _record_failures(home: str, index: int) -> None:
    for _ in range(15):
        record(
            Path(home),
            [
                {"server": "shared", "status": "unhealthy", "latency_ms": 1.0},
                {"server": f"own{index}", "status": "healthy", "latency_ms": 1.0},
            ],
        )


def _in_processes(target: Callable[..., object], home: Path, count: int) -> None:
    ctx = multiprocessing.get_context("spawn")  # clean processes, no inherited locks
    procs = [ctx.Process(target=target, args=(str(home), i)) for i in range(count)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0


@pytest.mark.slow
def test_concurrent_registry_adds_and_removes_lose_nothing(sane_home: Path) -> None:
    _in_processes(_add_then_rename, sane_home, 6)
    names = sorted(s.name for s in Registry(sane_home).servers())
    assert names == [f"keep{i}" for i in range(6)]
    assert leftovers(sane_home) == []


@pytest.mark.slow
def test_concurrent_health_history_writers_lose_no_update(sane_home: Path) -> None:
    _in_processes(_record_failures, sane_home, 6)
    history = json.loads((sane_home / "health-history.json").read_bytes())
    assert history["shared"]["failure_streak"] == 6 * 15  # every increment survived
    assert sorted(history) == sorted(["shared"] + [f"own{i}" for i in range(6)])
    assert leftovers(sane_home) == []


# -- corrupt files ------------------------------------------------------------------------

CORRUPT = [
    (b"", "not valid JSON at line 1, column 1"),
    (b'{"version": 1, "servers": [{"name": "a", "host": "h"}, {"na', "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (
        b'{"version": 1, "servers": [{"name": "a", "host": "h"}, {"name": "a", "host": "i"}]}',
        "appears twice",
    ),
    (b"[]", "servers.json: : Input should be"),
]


@pytest.mark.parametrize(
    "content,words", CORRUPT, ids=["empty", "half-written", "binary", "duplicate", "wrong-type"]
)
def test_corrupt_registry_is_named_and_never_overwritten(
    sane_home: Path, cli_env: dict[str, str], content: bytes, words: str
) -> None:
    sane_home.mkdir(mode=0o700)
    path = sane_home / "servers.json"
    path.write_bytes(content)
    for argv in (
        ["server", "list"],
        ["server", "add", "new", "--host", "h"],
        ["server", "remove", "a"],
        ["fleet", "run", "--all", "true"],
    ):
        status, doc, _ = cli(["sane.cli.main", *argv], cli_env)
        assert (status, doc["error"]["code"]) == (7, "config_invalid"), (argv, doc)
        assert words in doc["error"]["message"] and str(path) in doc["error"]["message"]
        assert doc["error"]["details"]["path"] == str(path)
        assert path.read_bytes() == content
    assert leftovers(sane_home) == []


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"s1": 5}', b'{"s1": {"failure_streak": "many"}}', b"\xff"],
)
def test_corrupt_health_history_is_kept_aside_and_rebuilt(sane_home: Path, content: bytes) -> None:
    """The history is sane's own cache of past checks: a corrupt one must not stop a
    health check, and must not be silently destroyed either."""
    sane_home.mkdir(mode=0o700)
    path = sane_home / "health-history.json"
    path.write_bytes(content)
    entries = record(sane_home, [{"server": "s1", "status": "healthy", "latency_ms": 2.0}])
    assert entries["s1"]["last_status"] == "healthy" and entries["s1"]["failure_streak"] == 0
    assert json.loads(path.read_bytes())["s1"]["last_status"] == "healthy"
    kept = sorted(sane_home.glob("health-history.json.corrupt-*"))
    assert [p.read_bytes() for p in kept] == [content]


# -- a full disk and a read-only home (real tmpfs mounts) -----------------------------


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted afterwards."""
    mountpoint = Path(tempfile.mkdtemp(prefix="sane-smallfs-"))
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        mountpoint.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


def fill(fs: Path) -> None:
    """Use up every free byte of ``fs`` (tmpfs fails the write with ENOSPC)."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC
    finally:
        os.close(fd)


def test_full_disk_is_a_clear_error_and_the_old_file_survives(
    small_fs: Path, cli_env: dict[str, str]
) -> None:
    home = small_fs / "home"
    env = dict(cli_env, SANE_HOME=str(home))
    status, _, _ = cli(["sane.cli.main", "server", "add", "s1", "--host", "h1"], env)
    assert status == 0
    record(home, [{"server": "s1", "status": "healthy", "latency_ms": 1.0}])
    registry_before = (home / "servers.json").read_bytes()
    history_before = (home / "health-history.json").read_bytes()
    fill(small_fs)
    status, doc, stderr = cli(
        ["sane.cli.main", "server", "add", "s2", "--host", "h2"] + ["--tag", "t" * 60] * 20, env
    )
    assert (status, doc["error"]["code"]) == (7, "state_invalid"), doc
    assert "No space left on device" in doc["error"]["message"]
    assert doc["error"]["details"] == {"path": str(home / "servers.json"), "errno": "ENOSPC"}
    assert "Traceback" not in stderr
    with pytest.raises(errors.StateError) as info:
        record(home, [{"server": "s1", "status": "unhealthy", "latency_ms": 1.0}])
    assert info.value.details["errno"] == "ENOSPC"
    assert (home / "servers.json").read_bytes() == registry_before
    assert (home / "health-history.json").read_bytes() == history_before
    assert leftovers(home) == []
    (small_fs / "filler").unlink()  # space again: the same command now works
    status, doc, _ = cli(["sane.cli.main", "server", "add", "s2", "--host", "h2"], env)
    assert status == 0 and [s.name for s in Registry(home).servers()] == ["s1", "s2"]


def test_read_only_home_is_a_clear_error_and_reads_still_work(
    small_fs: Path, cli_env: dict[str, str]
) -> None:
    home = small_fs / "home"
    env = dict(cli_env, SANE_HOME=str(home))
    assert cli(["sane.cli.main", "server", "add", "s1", "--host", "h1"], env)[0] == 0
    record(home, [{"server": "s1", "status": "healthy", "latency_ms": 1.0}])
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    status, doc, _ = cli(["sane.cli.main", "server", "list"], env)
    assert status == 0 and [s["name"] for s in doc["servers"]] == ["s1"]
    for argv in (["server", "add", "s2", "--host", "h2"], ["server", "remove", "s1"]):
        status, doc, stderr = cli(["sane.cli.main", *argv], env)
        assert (status, doc["error"]["code"]) == (7, "state_invalid"), doc
        assert "Read-only file system" in doc["error"]["message"]
        assert doc["error"]["details"]["errno"] == "EROFS"
        assert "Traceback" not in stderr
    with pytest.raises(errors.StateError) as info:
        record(home, [{"server": "s1", "status": "unhealthy", "latency_ms": 1.0}])
    assert info.value.details["errno"] == "EROFS"
    assert {p.name: p.read_bytes() for p in home.iterdir()} == before


def test_home_that_cannot_be_created_is_a_clear_error(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    env = dict(cli_env, SANE_HOME=str(blocker / "home"))
    status, doc, stderr = cli(["sane.cli.main", "server", "add", "s1", "--host", "h1"], env)
    assert (status, doc["error"]["code"]) == (7, "state_invalid"), doc
    assert str(blocker / "home") in doc["error"]["message"]
    assert "Traceback" not in stderr
    assert os.listdir(tmp_path) == ["file"]


@pytest.mark.parametrize("fault", ["ENOSPC", "EROFS"])
def test_run_timing_out_on_a_full_or_read_only_home_is_a_clear_error(
    small_fs: Path, tmux_server: TmuxTestServer, fault: str
) -> None:
    """A run that times out must save its record; when that fails the error is clear,
    and the pane is not left busy for ever: the next run in it works (regression: the
    busy flag stayed set, so this process got pane_busy on that pane from then on)."""
    home = small_fs / "home"
    ctx = Context(tmux_server.server, home=home)
    try:
        pane = tmux_server.new_pane("bash")
        assert run_command(ctx, "echo warm", pane=pane)["output"] == "warm\n"
        if fault == "ENOSPC":
            fill(small_fs)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
        with pytest.raises(errors.StateError) as info:
            run_command(ctx, "sleep 1; echo done", pane=pane, options=RunOptions(timeout=0.2))
        assert info.value.details["errno"] == fault
        assert f"may still be running in pane {pane}" in info.value.message
        if fault == "ENOSPC":
            (small_fs / "filler").unlink()
            assert os.listdir(home / "runs") == []
        result = run_command(ctx, "echo again", pane=pane, options=RunOptions(timeout=10))
        assert (result["status"], result["output"]) == ("completed", "again\n")
    finally:
        ctx.close()


def test_a_stuck_creation_lock_is_a_clear_error_not_a_hang(tmux_server: TmuxTestServer) -> None:
    """A process stuck while holding the creation lock makes the next creator give up
    with state_locked instead of waiting forever."""
    import fcntl

    from sane.tmux import structure

    path = structure.creation_lock_path(tmux_server.server)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: flock conflicts as across processes
    old = structure.CREATION_LOCK_TIMEOUT
    structure.CREATION_LOCK_TIMEOUT = 0.2
    try:
        with (
            pytest.raises(errors.StateLocked) as caught,
            structure.creation_lock(tmux_server.server),
        ):
            pass
        assert "creating tmux sessions" in caught.value.message
    finally:
        structure.CREATION_LOCK_TIMEOUT = old
        os.close(fd)


def _hold(lock: Path, token: bytes | None = None) -> int:
    """Take ``lock``'s flock on a new open file (as another process would)."""
    import fcntl

    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    if token is not None:
        os.pwrite(fd, token, 0)
    return fd


def test_state_lock_held_by_one_stuck_holder_times_out(tmp_path: Path) -> None:
    from sane.state import file_lock

    fd = _hold(tmp_path / "servers.json.lock", b"stuck")
    try:
        with pytest.raises(errors.StateLocked), file_lock(tmp_path / "servers.json", timeout=0.5):
            pass
    finally:
        os.close(fd)


def test_state_lock_waits_out_a_queue_that_moves(tmp_path: Path) -> None:
    """Holders that each keep the lock briefly but hand it on for longer than the
    timeout in all (a queue on a loaded machine): the waiter waits, and gets it."""
    import threading
    import time

    from sane.state import file_lock

    lock = tmp_path / "servers.json.lock"
    result: list[str] = []

    def waiter() -> None:
        try:
            with file_lock(tmp_path / "servers.json", timeout=0.6):
                result.append("got it")
        except errors.StateLocked:
            result.append("state_locked")

    fd = _hold(lock, b"holder 0")
    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        # each "next holder" writes its token, as file_lock does; 6 x 0.3 s = 1.8 s > 0.6
        for index in range(1, 7):
            time.sleep(0.3)
            os.pwrite(fd, f"holder {index}".encode(), 0)
    finally:
        os.close(fd)
    thread.join(30)
    assert result == ["got it"]


def test_a_recording_cut_by_a_full_disk_never_leaves_the_pane_busy(
    small_fs: Path, tmux_server: TmuxTestServer
) -> None:
    """A run handed over at its deadline is recorded by pipe-pane's ``cat`` into its
    stream file. When the disk fills under it, ``cat`` dies and the rest of the output
    is lost. The wait that learns the run is over releases the pane and returns `lost`
    even though the final record cannot be written (before: it raised state_invalid
    and the result this call held was gone), and the pane works again."""
    home = small_fs / "home"
    ctx = Context(tmux_server.server, home=home)
    try:
        pane = tmux_server.new_pane("bash")
        assert run_command(ctx, "echo warm", pane=pane)["output"] == "warm\n"
        started = run_command(
            ctx,
            "sleep 1; head -c 400000 /dev/zero | tr '\\0' a; echo",
            pane=pane,
            options=RunOptions(timeout=0.2),
        )
        assert started["status"] == "running"
        fill(small_fs)
        try:
            result = run_wait(ctx, started["run_id"], timeout=20)
            # Its output is incomplete (the end never reached the record): `lost`, with
            # what was recorded; the call's result was raised away as state_invalid before.
            assert result["status"] == "lost", result["status"]
            assert set(result["output"]) <= {"a"}
        finally:
            (small_fs / "filler").unlink()
        again = run_command(ctx, "echo again", pane=pane, options=RunOptions(timeout=10))
        assert (again["status"], again["output"]) == ("completed", "again\n")
    finally:
        ctx.close()
