"""Cold connect, two source trees alternated on one fleet, each beside plain ssh.

Reproduce (repository root, root user, openssh-server installed)::

    git worktree add /tmp/sane-old <commit>      # or: git archive <commit> | tar -x -C DIR
    PYTHONPATH=$PWD .venv/bin/python bench/bench_connect_ab.py --old /tmp/sane-old \\
        --new . --sizes 20,200,400 --parallel 50 --rounds 2

On a shared machine the load moves by a factor of several within minutes, so a
figure from one run set against one from another says little. This script makes one
fleet of N real sshd on loopback (``sane.testing.fleet``) and one private tmux server
per N, then, ``--rounds`` times, for each tree in turn (old first in odd rounds, new
first in even ones): every server pane closed, ``connect_many`` of that tree in a
fresh Python process (``PYTHONPATH`` the tree), then plain ``ssh host true`` (new
connections, the same parallelism) right after it. Each line gives the connect, its
own baseline and their ratio, the load, the CPU of the connect's Python process and
of the tmux server (from ``/proc``), and the command lines (commands) the connect
sent tmux through its control client, per server: less noisy than times, though not
free of the load (a takeover retyped after 3 s of silence, more liveness listings while
servers wait: one tree gave 7.1-7.3 lines per server at load 26-38 and 8.2-8.3 at
56-74). Medians of each tree's ratios at the end.

Each line also gives the CPU per server of both sides, the measure the load moves
least: sane's (its Python process, the tmux server, the panes' ssh clients with the
shell tmux starts them with, and every server-side process of the sessions: sshd,
the login shell, what sane typed there) against plain ssh's (the client, and the
server's processes). The panes are closed right after the timed connect, and each
side waits until every session is reaped, so its CPU is counted in its parent's
(``/proc/PID/stat``, children's times: the tmux server's and each sshd's). On a
quiet 2-core machine connecting 50 at once both sides are CPU-bound, so the wall
ratio there is about this CPU ratio; under load the wall ratio hides it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tree_child import COUNT_SENT, cpu_ms, run_child  # this directory: the script's path entry

from sane.fleet.registry import Server
from sane.fleet.ssh import ssh_argv
from sane.parallel import bounded_map
from sane.testing.fleet import Fleet, register
from sane.testing.pytest_plugin import TmuxTestServer

# Run in the child, with the tree under test first on sys.path: every pane closed,
# then one timed connect_many; prints its wall ms, failures and own CPU as JSON.
CHILD = (
    COUNT_SENT
    + """
import json, os, sys, time
from sane.fleet.panes import connect_many, down
from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.tmux.command import TmuxServer
socket, home, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = TmuxServer(socket_name=socket, config_file="/dev/null")
from pathlib import Path
with Context(server, home=Path(home)) as ctx:
    servers = Registry(ctx.home).servers()
    down(ctx)
    sent.update(lines=0, commands=0)
    cpu = os.times()
    started = time.perf_counter()
    reports = connect_many(ctx, servers, max_parallel=parallel)
    wall = (time.perf_counter() - started) * 1000
    after = os.times()
    failed = [r["error"]["message"] for r in reports if not r["ok"]]
    down(ctx)  # every session ended: its CPU is then in its parents' counts
    print(json.dumps({
        "ms": wall,
        "cpu_ms": (after.user + after.system - cpu.user - cpu.system) * 1000,
        "failed": failed[:3],
        "failures": len(failed),
        "tmux_lines": sent["lines"],
        "tmux_commands": sent["commands"],
        "tree": __import__("sane").__file__,
    }))
"""
)


def _children(pid: int, named: str | None = None) -> int:
    """How many children ``pid`` has (running the program ``named``, if given)."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
        kids = fh.read().split()
    if named is None:
        return len(kids)
    count = 0
    for kid in kids:
        with contextlib.suppress(OSError), open(f"/proc/{kid}/comm", encoding="utf-8") as fh:
            count += fh.read().strip() == named
    return count


def _reaped(tmux_pid: int, sshd: Sequence[int], timeout: float) -> None:
    """Wait until every session has ended and been reaped, its CPU then in its
    parent's count: no pane's ssh left under the tmux server, no child under any
    sshd, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while _children(tmux_pid, "ssh") or any(_children(p) for p in sshd):
        if time.monotonic() > deadline:
            raise SystemExit("sessions not reaped in time: CPU figures would be short")
        time.sleep(0.05)


def _server_cpu_ms(sshd: Sequence[int]) -> float:
    """CPU of every session the fleet's sshd have ended (connection handlers, login
    shells, what they ran), summed."""
    return sum(cpu_ms(pid, children=True) for pid in sshd)


def _fresh(server: Server) -> list[str]:
    """``ssh`` to ``server`` as sane would, but a new connection (no ControlMaster)."""
    argv = [("ControlPath=none" if w.startswith("ControlPath=") else w) for w in ssh_argv(server)]
    return [*argv, "true"]


def _ssh_true(servers: Sequence[Server], parallel: int) -> float:
    def one(argv: list[str]) -> None:
        proc = subprocess.run(
            argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"baseline failed: {proc.stderr[-300:]!r}")

    started = time.perf_counter()
    bounded_map(one, [_fresh(s) for s in servers], parallel)
    return (time.perf_counter() - started) * 1000


def _own_children_cpu_ms() -> float:
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime) * 1000


def _connect(tree: Path, socket: str, home: Path, parallel: int) -> dict[str, object]:
    return run_child(tree, CHILD, [socket, str(home), str(parallel)], "connect")


def bench(count: int, parallels: list[int], trees: dict[str, Path], rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"sane-bench-ab-{count}-"))
    socket = f"sane-bench-ab-{os.getpid()}-{count}"
    srv = TmuxTestServer(socket)
    srv.kill()
    srv.start()
    ratios: dict[tuple[str, int], list[float]] = {}
    cpu_ratios: dict[tuple[str, int], list[float]] = {}
    try:
        with Fleet(count, ready_timeout=max(10.0, count / 10)) as fleet:
            home = work / "home"
            servers = register(home, fleet)
            tmux_pid = int(srv.run("display-message", "-p", "#{pid}").strip())
            sshd = [s.pid for s in fleet.servers if s.pid is not None]
            names = list(trees)
            for round_ in range(rounds):
                order = names if round_ % 2 == 0 else names[::-1]
                for parallel in parallels:
                    for name in order:
                        load = os.getloadavg()[0]
                        tmux_before = cpu_ms(tmux_pid)
                        panes_before = cpu_ms(tmux_pid, children=True)
                        server_before = _server_cpu_ms(sshd)
                        got = _connect(trees[name], socket, home, parallel)
                        tmux_cpu = cpu_ms(tmux_pid) - tmux_before
                        _reaped(tmux_pid, sshd, 60.0 + count / 10)
                        panes_cpu = cpu_ms(tmux_pid, children=True) - panes_before
                        server_cpu = _server_cpu_ms(sshd) - server_before
                        own = float(str(got["cpu_ms"]))
                        total = own + tmux_cpu + panes_cpu + server_cpu
                        clients_before = _own_children_cpu_ms()
                        server_before = _server_cpu_ms(sshd)
                        base = _ssh_true(servers, parallel)
                        _reaped(tmux_pid, sshd, 60.0 + count / 10)
                        base_cpu = (
                            (_own_children_cpu_ms() - clients_before)
                            + _server_cpu_ms(sshd)
                            - server_before
                        )
                        ms = float(str(got["ms"]))
                        ratios.setdefault((name, parallel), []).append(ms / base)
                        cpu_ratios.setdefault((name, parallel), []).append(total / base_cpu)
                        print(
                            f"  N={count} par={parallel} {name:>4}: connect {ms:8.0f} ms, "
                            f"ssh true {base:8.0f} ms, ratio {ms / base:.2f}x; "
                            f"CPU/server {total / count:.1f} vs {base_cpu / count:.1f} ms "
                            f"({total / base_cpu:.2f}x: sane {own / count:.1f}, tmux "
                            f"{tmux_cpu / count:.1f}, pane ssh {panes_cpu / count:.1f}, server "
                            f"{server_cpu / count:.1f}); tmux lines (commands) "
                            f"{float(str(got['tmux_lines'])) / count:.1f} "
                            f"({float(str(got['tmux_commands'])) / count:.1f})/server; "
                            f"load {load:.1f}; failed {got['failures']} {got['failed']}",
                            flush=True,
                        )
    finally:
        srv.kill()
    for (name, parallel), values in sorted(ratios.items()):
        cpus = cpu_ratios[(name, parallel)]
        print(
            f"N={count} par={parallel} {name}: ratio median {statistics.median(values):.2f}x "
            f"({', '.join(f'{v:.2f}' for v in values)}); CPU ratio median "
            f"{statistics.median(cpus):.2f}x ({', '.join(f'{v:.2f}' for v in cpus)})",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--old", type=Path, required=True, help="source tree before")
    parser.add_argument("--new", type=Path, default=Path("."), help="source tree after")
    parser.add_argument("--sizes", default="20,200")
    parser.add_argument("--parallel", default="50")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    trees = {"old": args.old, "new": args.new}
    print(f"bench_connect_ab: load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for count in (int(n) for n in args.sizes.split(",")):
        bench(count, [int(p) for p in args.parallel.split(",")], trees, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
