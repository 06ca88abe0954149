"""What the scripts comparing two source trees on one fleet share: one tree's child
process, run and read, and a process's CPU time from ``/proc``.

A tree is compared by running its code in a fresh Python process with ``PYTHONPATH``
that tree (``bench_connect_ab.py``, ``bench_warm_ab.py``): the parent's own ``sane``
never mixes in. CPU time, not wall time, is what a loaded shared machine leaves
comparable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The start of a child's code: counts, in ``sent``, the tmux command lines and
# commands its control clients send (a count no load changes), and the writes they go
# to tmux in (each write tmux reads alone is a turn of its event loop, O(panes); how
# lines fall into writes depends on timing, so less sure than the other two).
COUNT_SENT = """
from sane.tmux.control import ControlClient
sent = {"lines": 0, "commands": 0, "writes": 0}
send = ControlClient.send
def counting(self, *commands, **kw):
    sent["lines"] += 1
    sent["commands"] += len(commands)
    return send(self, *commands, **kw)
ControlClient.send = counting
write = ControlClient._write
def writing(self, reply, hold):
    if not hold and (reply is not None or self._held):
        sent["writes"] += 1
    return write(self, reply, hold)
ControlClient._write = writing
"""


def cpu_ms(pid: int, children: bool = False) -> float:
    """The user and system CPU time process ``pid`` has used so far, in ms (clock
    ticks); with ``children``, that of its children it has reaped instead."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) * 1000 / os.sysconf("SC_CLK_TCK")


def run_child(tree: Path, code: str, args: Sequence[str], doing: str) -> dict[str, object]:
    """Run ``code`` (its arguments ``args``) in a fresh Python process with ``tree``'s
    ``sane`` first on its path; the JSON object on its last line of output. Exits the
    script with the child's stderr tail if it failed (``doing`` says what it was)."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{doing} in {tree} failed: {out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
