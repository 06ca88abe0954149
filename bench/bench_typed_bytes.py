"""What each typed byte costs the shell that reads it (a server's share of a warm run).

Reproduce (repository root)::

    .venv/bin/python bench/bench_typed_bytes.py --lengths 10,60,110 --lines 300

Why: on a loopback fleet the servers' sshd and shells share the orchestrator's cores,
so their CPU per run is part of a warm fleet run's cost per server (issue 17: "linear
cost"). A ``strace`` of one server during a warm run shows bash's readline reading the
typed line one byte at a time (a ``pselect`` and a ``read`` per byte, and the echo),
and nothing at all while the command runs. This script measures that share alone: an
interactive ``bash --norc --noprofile`` on a pty of its own (no tmux, no ssh), fed
``--lines`` lines of each length (``: xxx...`` and Enter, each written at once as tmux
writes sane's line, the next after the prompt came back), and bash's CPU from
``/proc`` (its own and its reaped children's) per line. Alternated over ``--rounds``;
CPU, so the load of the shared machine moves it little. The slope between lengths is
the cost per typed byte; a warm run's line into bash is ~110 bytes today.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import sys
import time
from collections.abc import Sequence

PROMPT = b"PR> "


def _cpu_ms(pid: int) -> float:
    """User + system CPU of ``pid`` and its reaped children, in ms."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def _until_prompt(fd: int, timeout: float = 30.0) -> None:
    """Read the pty until the prompt shows (the line was read and run)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not seen.endswith(PROMPT):
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"no prompt from bash in {timeout} s: {seen[-200:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen = (seen + os.read(fd, 65536))[-4096:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lengths", default="10,60,110", help="typed bytes per line")
    parser.add_argument("--lines", type=int, default=300, help="lines per length and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive bash with a known prompt
        os.environ.update(PS1=PROMPT.decode(), TERM="xterm")
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
    try:
        _until_prompt(fd)
        print(f"bench_typed_bytes: load {os.getloadavg()[0]:.1f}; bash CPU per line, ms")
        costs: dict[int, list[float]] = {n: [] for n in lengths}
        for round_ in range(args.rounds):
            for length in lengths if round_ % 2 == 0 else lengths[::-1]:
                line = b": " + b"x" * max(0, length - 2) + b"\r"
                before = _cpu_ms(pid)
                for _ in range(args.lines):
                    os.write(fd, line)
                    _until_prompt(fd)
                costs[length].append((_cpu_ms(pid) - before) / args.lines)
        medians = {n: statistics.median(costs[n]) for n in lengths}
        for length in lengths:
            rounds = " / ".join(f"{c:.3f}" for c in costs[length])
            print(f"  {length:>4} bytes: {medians[length]:.3f} ms (rounds {rounds})")
        if len(lengths) > 1:
            low, high = min(lengths), max(lengths)
            per_byte = (medians[high] - medians[low]) / (high - low) * 1000
            print(f"per typed byte: {per_byte:.1f} us ({low} -> {high} bytes)")
        print(f"load {os.getloadavg()[0]:.1f} at the end")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
