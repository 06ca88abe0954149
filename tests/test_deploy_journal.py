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
        journal.append("item_started", server="a", item="step:x", phase="do", attempt=1,
                       run_id="r1")
        journal.append("item_finished", server="a", item="step:x", phase="do", attempt=1,
                       ok=True, status="completed", exit_code=0)
        journal.append("item_done", server="a", item="step:x")
        journal.append("item_started", server="a", item="step:y", phase="do", attempt=1,
                       run_id="r2")
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
