"""The deploy journal on its own: fsynced appends, torn last lines, corruption, folding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sane import errors
from sane.deploy.journal import Journal, fold, read_events


def start(journal: Journal) -> None:
    journal.append("deploy_started", deploy_id="d1", servers=["a", "b"], plan="p")


def test_events_fold_into_per_server_state(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        start(journal)
        journal.append(
            "item_started", server="a", item="step:x", phase="do", attempt=1, run_id="r1"
        )
        journal.append(
            "item_finished",
            server="a",
            item="step:x",
            phase="do",
            attempt=1,
            ok=True,
            status="completed",
            exit_code=0,
        )
        journal.append("item_done", server="a", item="step:x")
        journal.append(
            "item_started", server="a", item="step:y", phase="do", attempt=1, run_id="r2"
        )
    state = fold(read_events(tmp_path))
    a, b = state.servers["a"], state.servers["b"]
    assert a.done == ["step:x"] and list(a.in_flight) == [("step:y", "do")]
    assert a.to_undo() == ["step:x"] and not b.touched and state.finished is None
    assert oct(os.stat(tmp_path / "journal.jsonl").st_mode & 0o777) == "0o600"


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        start(journal)
    path = tmp_path / "journal.jsonl"
    with open(path, "ab") as fh:  # what a process killed inside write() leaves
        fh.write(b'{"event": "item_started", "server": "a", "it')
    assert [e["event"] for e in read_events(tmp_path)] == ["deploy_started"]
    with Journal(tmp_path) as journal:
        journal.append("item_done", server="a", item="step:x")
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["deploy_started", "item_done"]


def test_a_corrupt_line_in_the_middle_is_an_error_naming_it(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        start(journal)
        journal.append("item_done", server="a", item="step:x")
    path = tmp_path / "journal.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"garbage\n" + lines[1])
    with pytest.raises(errors.StateError) as caught:
        read_events(tmp_path)
    assert caught.value.details["line"] == 2 and "line 2 is corrupt" in caught.value.message


def test_a_missing_journal_is_deploy_not_found(tmp_path: Path) -> None:
    with pytest.raises(errors.DeployNotFound):
        read_events(tmp_path)


def test_a_status_probe_never_makes_resume_refuse(tmp_path: Path) -> None:
    """``status`` probes the deploy's lock; a worker (resume, rollback) must still get
    it while a probe is under way (it was refused 615 times in 3,000 with a status
    poller running), and two probes must not take each other for a worker."""
    import fcntl
    import threading

    from sane.deploy.engine import _is_owned, _owned

    (tmp_path / "lock").touch()
    probe = os.open(tmp_path / "lock", os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a status process, mid-probe
    release = threading.Timer(0.3, os.close, (probe,))
    try:
        assert not _is_owned(tmp_path)  # another probe is not a worker
        release.start()
        with _owned(tmp_path):  # waits the probe out instead of refusing
            assert _is_owned(tmp_path)
    finally:
        if release.ident is not None:
            release.join()
        else:
            os.close(probe)
    assert not _is_owned(tmp_path)


def test_a_failed_append_leaves_no_torn_line_and_the_next_one_is_whole(tmp_path: Path) -> None:
    """A write that fails half way (a full disk: here a file size limit) is cut back
    off, so the journal stays readable and the next append lands whole."""
    import resource
    import signal

    with Journal(tmp_path) as journal:
        start(journal)
        size = (tmp_path / "journal.jsonl").stat().st_size
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))
        try:
            with pytest.raises(errors.StateError) as caught:
                journal.append("item_done", server="a", item="step:" + "x" * 200)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old_handler)
        assert caught.value.details["errno"] == "EFBIG"
        assert (tmp_path / "journal.jsonl").stat().st_size == size
        journal.append("item_done", server="a", item="step:y")
    assert [e["event"] for e in read_events(tmp_path)] == ["deploy_started", "item_done"]
