"""A/B of the warm ``true`` round trip between two source trees, by load-independent
measures: CPU time per run of every process on the path, and tmux command lines per run.

Reproduce (from the repository root, as root for the ssh mode)::

    git worktree add /tmp/before main~1     # the tree to compare against
    PYTHONPATH=$PWD .venv/bin/python bench/bench_run_ab.py /tmp/before . --mode ssh
    PYTHONPATH=$PWD .venv/bin/python bench/bench_run_ab.py /tmp/before . --mode bash

One private tmux server (and for ``--mode ssh`` one throwaway sshd on 127.0.0.1, as in
``bench_run.py`` section b) holds one pane per tree: a bash behind ``ssh -tt``, or a
local shell (``--mode bash``, ``dash``, ``zsh``, ...). Each tree drives its own pane
from a worker process of its own (``PYTHONPATH`` set to that tree), warmed up first;
the workers then run blocks of N runs of ``run_command(ctx, "true", pane=...)`` in
turns, ``old new new old old new ...``, so a load that comes and goes weighs on both
alike. Around each block this process reads the CPU time (utime + stime, from
``/proc/PID/stat``) of the tmux server, the pane's shell, the ssh client and the
session's sshd; each worker reports its own CPU time (``time.process_time``: all its
threads) and the tmux command lines its control clients sent. Wall-clock medians per
block are printed too, but on a shared machine only the CPU figures and the line
counts compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

WARMUP = 10
UP_DEADLINE = 120.0  # a loaded machine's first ssh takeover can take a minute


def _worker(socket_name: str, pane: str, home: str) -> int:
    """Drive ``pane`` with this interpreter's ``sane`` (the tree on PYTHONPATH)."""
    import sane
    from sane.ops.context import Context
    from sane.ops.run.command import run_command
    from sane.ops.run.options import RunOptions
    from sane.tmux import control
    from sane.tmux.command import TmuxServer

    ctx = Context(TmuxServer(socket_name), home=Path(home))
    lines = [0]
    send = control.ControlClient.send

    def counted(self: control.ControlClient, *commands: str, **kwargs: object) -> object:
        lines[0] += 1
        return send(self, *commands, **kwargs)  # type: ignore[arg-type]

    control.ControlClient.send = counted  # type: ignore[assignment,method-assign]

    def one() -> None:
        result = run_command(ctx, "true", pane=pane, options=RunOptions(timeout=30))
        if (result["status"], result["exit_code"]) != ("completed", 0):
            raise RuntimeError(f"`true` did not complete: {result}")

    deadline = time.monotonic() + UP_DEADLINE
    while True:  # the remote shell may still be starting
        try:
            one()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    for _ in range(WARMUP):
        one()
    print(json.dumps({"tree": str(Path(sane.__file__).parent.parent)}), flush=True)
    for line in sys.stdin:
        runs = int(line)
        lines[0] = 0
        samples = []
        cpu = time.process_time()
        for _ in range(runs):
            start = time.perf_counter()
            one()
            samples.append(time.perf_counter() - start)
        report = {
            "cpu_ms": (time.process_time() - cpu) / runs * 1000,
            "median_ms": statistics.median(samples) * 1000,
            "lines": lines[0] / runs,
        }
        print(json.dumps(report), flush=True)
    ctx.close()
    return 0


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def _answer(worker: subprocess.Popen[str], name: str) -> dict[str, Any]:
    """The worker's next report; its failure (its traceback is on stderr) as an error."""
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if not line:
        raise RuntimeError(f"the worker for tree {name} failed (exit {worker.wait()})")
    answer: dict[str, Any] = json.loads(line)
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("old", help="source tree A (the one compared against)")
    parser.add_argument("new", help="source tree B")
    parser.add_argument("--mode", default="ssh", help="ssh, or a shell of SHELLS (bash)")
    parser.add_argument("--runs", type=int, default=200, help="runs per block (200)")
    parser.add_argument("--rounds", type=int, default=6, help="blocks per tree (6)")
    args = parser.parse_args()

    import bench_run as br

    from sane.testing.pytest_plugin import SHELLS, TmuxTestServer

    if args.mode != "ssh" and args.mode not in SHELLS:
        parser.error(f"--mode must be ssh or one of {', '.join(SHELLS)}")
    if args.mode == "ssh" and (reason := br.ssh_skip_reason()) is not None:
        print(f"ssh mode not possible: {reason}", file=sys.stderr)
        return 2
    trees = {"old": str(Path(args.old).resolve()), "new": str(Path(args.new).resolve())}
    hz = os.sysconf("SC_CLK_TCK")
    srv = TmuxTestServer(f"sane-ab-{os.getpid()}-{secrets.token_hex(3)}")
    tmp = Path(tempfile.mkdtemp(prefix="sane-ab-"))
    workers: dict[str, subprocess.Popen[str]] = {}
    try:
        srv.start()
        sshd_cm = br.throwaway_sshd() if args.mode == "ssh" else contextlib.nullcontext(None)
        with sshd_cm as sshd:
            sshd_pid = None
            if sshd is not None:
                sshd_pid = next(
                    int(p)
                    for p in os.listdir("/proc")
                    if p.isdigit() and _parent(int(p)) == os.getpid() and _comm(int(p)) == "sshd"
                )
            groups: dict[str, dict[str, list[int]]] = {}
            for name, tree in trees.items():
                before = set(_descendants(sshd_pid)) if sshd_pid else set()
                command = br.ssh_pane_command(*sshd) if sshd is not None else args.mode
                pane = srv.new_pane(command)
                argv = [sys.executable, __file__, "--worker", srv.socket_name, pane]
                workers[name] = worker = subprocess.Popen(
                    [*argv, str(tmp / name)],
                    cwd=tree,
                    env=dict(os.environ, PYTHONPATH=tree),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert worker.stdout is not None
                print(f"{name}: {_answer(worker, name)['tree']}", flush=True)
                pane_pid = int(srv.run("display-message", "-p", "-t", pane, "#{pane_pid}"))
                remote = [p for p in _descendants(sshd_pid) if p not in before] if sshd_pid else []
                groups[name] = {
                    "shell": [p for p in remote if _comm(p) != "sshd"] if remote else [pane_pid],
                    "ssh+sshd": [pane_pid, *(p for p in remote if _comm(p) == "sshd")]
                    if remote
                    else [],
                }
            tmux_pid = int(srv.run("display-message", "-p", "#{pid}"))
            cpu: dict[str, dict[str, float]] = {
                n: {"tmux": 0, "shell": 0, "ssh+sshd": 0, "sane": 0, "lines": 0} for n in trees
            }
            medians: dict[str, list[float]] = {n: [] for n in trees}
            per_block: dict[str, list[float]] = {n: [] for n in trees}  # all CPU, ms per run
            for i in range(args.rounds * 2):
                name = ("old", "new", "new", "old")[i % 4]
                worker = workers[name]
                assert worker.stdin is not None and worker.stdout is not None
                start = {k: sum(map(_ticks, pids)) for k, pids in groups[name].items()}
                start["tmux"] = _ticks(tmux_pid)
                spent_before = sum(v for k, v in cpu[name].items() if k != "lines")
                worker.stdin.write(f"{args.runs}\n")
                worker.stdin.flush()
                block = _answer(worker, name)
                for key, pids in groups[name].items():
                    cpu[name][key] += sum(map(_ticks, pids)) - start[key]
                cpu[name]["tmux"] += _ticks(tmux_pid) - start["tmux"]
                cpu[name]["sane"] += block["cpu_ms"] * args.runs * hz / 1000
                cpu[name]["lines"] += block["lines"] * args.runs
                medians[name].append(block["median_ms"])
                spent = sum(v for k, v in cpu[name].items() if k != "lines") - spent_before
                per_block[name].append(spent / hz / args.runs * 1000)
    finally:
        for worker in workers.values():
            if worker.stdin is not None:
                worker.stdin.close()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    total = args.runs * args.rounds
    print(f"mode {args.mode}, {args.rounds} blocks of {args.runs} runs per tree, alternated")
    print(
        "tree | CPU ms per run: sane, tmux, shell, ssh+sshd, all (mean; median of blocks)"
        " | tmux lines/run | wall medians"
    )
    for name in trees:
        c = {k: v / hz / total * 1000 for k, v in cpu[name].items() if k != "lines"}
        blocks = " ".join(f"{m:.2f}" for m in medians[name])
        print(
            f"{name} | {c['sane']:.3f}, {c['tmux']:.3f}, {c['shell']:.3f}, {c['ssh+sshd']:.3f},"
            f" {sum(c.values()):.3f}; {statistics.median(per_block[name]):.3f}"
            f" | {cpu[name]['lines'] / total:.2f} | {blocks}"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        sys.exit(_worker(*sys.argv[2:5]))
    sys.exit(main())
