"""Warm fleet runs, two source trees alternated on one fleet, by load-independent counts.

Reproduce (repository root, root user, openssh-server installed)::

    git worktree add /tmp/sane-old <commit>      # or: git archive <commit> | tar -x -C DIR
    PYTHONPATH=$PWD .venv/bin/python bench/bench_warm_ab.py --old /tmp/sane-old \\
        --new . --sizes 200 --rounds 3

One fleet of N real sshd on loopback (``sane.testing.fleet``) and one private tmux
server per N; every server connected once (``connect_many``, the new tree). Then,
``--rounds`` times, for each tree in turn (old first in odd rounds, new first in even
ones), a fresh Python process with ``PYTHONPATH`` the tree runs one warm-up
``fleet_run`` of ``true`` and then ``--repeat`` of each of warm ``true`` and ``sleep
1`` on all N at once (--max-parallel N), reading around each: its own CPU (every
thread, ``os.times``), its control client's reader thread's CPU and the tmux
server's (``/proc``), and the tmux command lines and commands it sent and the writes
they went in (each write tmux reads alone is a turn of its event loop, O(panes)).
Printed per server: CPU in ms (means: CPU comes in clock ticks of 10 ms) and the
counts: lines and commands no load changes; writes depend on how the ends fall in
time, less than CPU does; wall medians beside them say little on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tree_child import COUNT_SENT, run_child  # this directory: the script's path entry

from sane.fleet.panes import connect_many
from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.testing.fleet import Fleet, register
from sane.testing.pytest_plugin import TmuxTestServer

# Run in the child, the tree under test first on sys.path; prints one JSON line.
CHILD = (
    COUNT_SENT
    + """
import json, os, sys, threading, time
from pathlib import Path
from sane.fleet.registry import Registry
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.tmux.command import TmuxServer
socket, home, tmux_pid, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def cpu_ms(path):
    try:
        with open(path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
def reader_ms():
    return sum(cpu_ms(f"/proc/self/task/{t.native_id}/stat") for t in threading.enumerate()
               if t.name.startswith("sane-tmux-control"))
server = TmuxServer(socket_name=socket, config_file="/dev/null")
out = {"tree": __import__("sane").__file__}
with Context(server, home=Path(home)) as ctx:
    servers = Registry(ctx.home).servers()
    count = len(servers)
    warm = fleet_run(ctx, servers, "true", max_parallel=count)
    assert warm["status"] == "completed", warm["counts"]
    for command in ("true", "sleep 1"):
        sent.update(lines=0, commands=0, writes=0)
        walls, own, reader, tmux = [], 0.0, 0.0, 0.0
        for _ in range(repeat):
            cpu, r0, t0 = os.times(), reader_ms(), cpu_ms(f"/proc/{tmux_pid}/stat")
            started = time.perf_counter()
            result = fleet_run(ctx, servers, command, max_parallel=count)
            walls.append((time.perf_counter() - started) * 1000)
            after = os.times()
            own += (after.user + after.system - cpu.user - cpu.system) * 1000
            reader += reader_ms() - r0
            tmux += cpu_ms(f"/proc/{tmux_pid}/stat") - t0
            assert result["status"] == "completed", result["counts"]
        runs = repeat * count
        out[command] = {
            "wall_ms": sorted(walls)[len(walls) // 2],
            "sane": own / runs, "reader": reader / runs, "tmux": tmux / runs,
            "lines": sent["lines"] / runs, "commands": sent["commands"] / runs,
            "writes": sent["writes"] / runs,
        }
print(json.dumps(out))
"""
)


def _child(tree: Path, socket: str, home: Path, tmux_pid: int, repeat: int) -> dict[str, object]:
    args = [socket, str(home), str(tmux_pid), str(repeat)]
    return run_child(tree, CHILD, args, "warm runs")


def bench(count: int, trees: dict[str, Path], rounds: int, repeat: int) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"sane-bench-warm-ab-{count}-"))
    socket = f"sane-bench-warm-ab-{os.getpid()}-{count}"
    srv = TmuxTestServer(socket)
    srv.kill()
    srv.start()
    figures: dict[tuple[str, str, str], list[float]] = {}
    try:
        with Fleet(count, ready_timeout=max(10.0, count / 10)) as fleet:
            home = work / "home"
            register(home, fleet)
            with Context(srv.server, home=home) as ctx:
                reports = connect_many(ctx, Registry(home).servers(), max_parallel=50)
            failed = [r for r in reports if not r["ok"]]
            if failed:
                raise SystemExit(f"{len(failed)} of {count} did not connect: {failed[0]}")
            tmux_pid = int(srv.run("display-message", "-p", "#{pid}").strip())
            names = list(trees)
            for round_ in range(rounds):
                for name in names if round_ % 2 == 0 else names[::-1]:
                    load = os.getloadavg()[0]
                    got = _child(trees[name], socket, home, tmux_pid, repeat)
                    for command in ("true", "sleep 1"):
                        row = got[command]
                        assert isinstance(row, dict)
                        for key, value in row.items():
                            figures.setdefault((command, name, key), []).append(float(value))
                        print(
                            f"  N={count} {name:>3} {command:>7}: wall {row['wall_ms']:6.0f} ms;"
                            f" per server: sane CPU {row['sane']:.3f} ms (reader "
                            f"{row['reader']:.3f}), tmux CPU {row['tmux']:.3f} ms, tmux lines "
                            f"{row['lines']:.2f}, commands {row['commands']:.2f}, writes "
                            f"{row['writes']:.3f}; "
                            f"load {load:.1f}",
                            flush=True,
                        )
    finally:
        srv.kill()
    for command in ("true", "sleep 1"):
        for name in trees:
            got = {k: statistics.median(figures[(command, name, k)]) for k in ("sane", "tmux")}
            print(
                f"N={count} {command} {name}: medians per server: sane CPU {got['sane']:.3f}"
                f" ms, tmux CPU {got['tmux']:.3f} ms, commands "
                f"{statistics.median(figures[(command, name, 'commands')]):.2f}, writes "
                f"{statistics.median(figures[(command, name, 'writes')]):.3f}",
                flush=True,
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--old", type=Path, required=True, help="source tree before")
    parser.add_argument("--new", type=Path, default=Path("."), help="source tree after")
    parser.add_argument("--sizes", default="200")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command per turn")
    args = parser.parse_args(argv)
    trees = {"old": args.old, "new": args.new}
    print(f"bench_warm_ab: load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for count in (int(n) for n in args.sizes.split(",")):
        bench(count, trees, args.rounds, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
