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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sane.fleet.registry import Server
from sane.fleet.ssh import ssh_argv
from sane.parallel import bounded_map
from sane.testing.fleet import Fleet, register
from sane.testing.pytest_plugin import TmuxTestServer

# Run in the child, with the tree under test first on sys.path: every pane closed,
# then one timed connect_many; prints its wall ms, failures and own CPU as JSON.
CHILD = """
import json, os, sys, time
from sane.fleet.panes import connect_many, down
from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.tmux.command import TmuxServer
from sane.tmux.control import ControlClient
socket, home, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3])
sent = {"lines": 0, "commands": 0}
send = ControlClient.send
def counting(self, *commands, **kw):
    sent["lines"] += 1
    sent["commands"] += len(commands)
    return send(self, *commands, **kw)
ControlClient.send = counting
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


def _cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


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


def _connect(tree: Path, socket: str, home: Path, parallel: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, socket, str(home), str(parallel)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"connect in {tree} failed: {out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench(count: int, parallels: list[int], trees: dict[str, Path], rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"sane-bench-ab-{count}-"))
    socket = f"sane-bench-ab-{os.getpid()}-{count}"
    srv = TmuxTestServer(socket)
    srv.kill()
    srv.start()
    ratios: dict[tuple[str, int], list[float]] = {}
    try:
        with Fleet(count, ready_timeout=max(10.0, count / 10)) as fleet:
            home = work / "home"
            servers = register(home, fleet)
            tmux_pid = int(srv.run("display-message", "-p", "#{pid}").strip())
            names = list(trees)
            for round_ in range(rounds):
                order = names if round_ % 2 == 0 else names[::-1]
                for parallel in parallels:
                    for name in order:
                        load = os.getloadavg()[0]
                        tmux_before = _cpu_ms(tmux_pid)
                        got = _connect(trees[name], socket, home, parallel)
                        tmux_cpu = _cpu_ms(tmux_pid) - tmux_before
                        base = _ssh_true(servers, parallel)
                        ms = float(str(got["ms"]))
                        ratios.setdefault((name, parallel), []).append(ms / base)
                        print(
                            f"  N={count} par={parallel} {name:>4}: connect {ms:8.0f} ms, "
                            f"ssh true {base:8.0f} ms, ratio {ms / base:.2f}x; "
                            f"sane CPU {float(str(got['cpu_ms'])) / count:.1f} ms/server, "
                            f"tmux CPU {tmux_cpu / count:.1f} ms/server; tmux lines (commands) "
                            f"{float(str(got['tmux_lines'])) / count:.1f} "
                            f"({float(str(got['tmux_commands'])) / count:.1f})/server; "
                            f"load {load:.1f}; failed {got['failures']} {got['failed']}",
                            flush=True,
                        )
    finally:
        srv.kill()
    for (name, parallel), values in sorted(ratios.items()):
        print(
            f"N={count} par={parallel} {name}: ratio median {statistics.median(values):.2f}x "
            f"({', '.join(f'{v:.2f}' for v in values)})",
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
