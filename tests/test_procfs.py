"""sane.procfs reads a real process's /proc entries, whatever its name holds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sane import procfs
from sane.poll import poll


def test_a_process_named_with_parentheses_and_spaces_is_read_right(tmp_path: Path) -> None:
    odd = tmp_path / "a) b (c"
    odd.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(odd), "30"])
    try:
        # The kernel names the process as its exec begins and fills its arguments a
        # moment later: wait for both.
        args = [str(odd).encode(), b"30"]
        assert poll(lambda: (procfs.name(proc.pid), procfs.argv(proc.pid)) == ("a) b (c", args), 10)
        assert procfs.field(proc.pid, procfs.PPID) == os.getpid()
        assert procfs.field(proc.pid, procfs.SESSION) == os.getsid(0)
        assert procfs.state(proc.pid) in ("S", "R")
        age = procfs.age(proc.pid)
        assert age is not None and 0 <= age < 60
    finally:
        proc.kill()
        proc.wait()


def test_a_process_gone_answers_none() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    for read in (procfs.stat_fields, procfs.name, procfs.state, procfs.argv, procfs.age):
        assert read(proc.pid) is None, read
    assert procfs.field(proc.pid, procfs.PPID) is None
