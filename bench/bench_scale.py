"""Benchmark sane on big loopback fleets against plain ssh and the peers, in one run.

Reproduce (repository root, root user, openssh-server installed; parallel-ssh's copy
is measured when ``pip install parallel-ssh`` has been done)::

    .venv/bin/python bench/bench_scale.py --sizes 20,100,200,400 --parallel 5,50

Everything runs on this machine: N real sshd on 127.0.0.1 (``sane.testing.fleet``), a
private tmux server, temporary files; all removed at the end. For every N, in the same
run, each sane figure is printed beside its baseline and the ratio:

* connect: ``connect_many`` (what ``sane up`` runs) with every pane closed first, against
  plain ``ssh host true`` with the same parallelism (new connections each);
* warm ``true`` and ``sleep 1`` (``fleet_run``, --max-parallel N) against ``ssh host
  true`` over the panes' own ControlMasters, N at once, with the CPU per server of
  sane's process and of the tmux server;
* put: ``fleet_put`` of 100 KB (--max-parallel N) against ``scp`` over the same
  ControlMasters, N at once, and parallel-ssh's ``copy_file`` (new connections);
* health: ``check_health`` against ``cat`` of the same file over the ControlMasters;
* progress: warm ``true`` and a health read with the live display drawing on a real
  pseudo-terminal (what a person at a terminal gets) against the same with no listener;
* resources: with every pane up, per server: the tmux server's PSS and descriptors,
  the panes' ssh clients' PSS and descriptors, sane's own, and the host's ptys in use.

At the end, per-server slopes (ms per added server) between the smallest and largest N.
Figures on a shared 2-core machine are noisy: read the ratios, not the milliseconds.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sane.fleet.panes import connect_many, down
from sane.fleet.registry import Registry, Server
from sane.fleet.run import fleet_put, fleet_run
from sane.fleet.ssh import ssh_argv
from sane.ops.context import Context
from sane.parallel import bounded_map
from sane.testing.fleet import Fleet
from sane.testing.pytest_plugin import TmuxTestServer

PUT_BYTES = 100 * 1024
Row = tuple[str, float, float | None]  # what, sane ms, baseline ms


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Median wall-clock ms of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _ssh_all(argvs: Sequence[list[str]], parallel: int, data: bytes | None = None) -> None:
    """Run every argv, at most ``parallel`` at once; any failure aborts the bench."""

    def one(argv: list[str]) -> None:
        proc = subprocess.run(
            argv,
            input=data,
            capture_output=True,
            timeout=120,
            stdin=None if data is not None else subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"baseline failed: {argv[-1]}: {proc.stderr[-300:]!r}")

    bounded_map(one, argvs, parallel)


def _fresh(server: Server) -> list[str]:
    """``ssh`` to ``server`` as sane would, but a new connection (no ControlMaster)."""
    return [
        ("ControlPath=none" if word.startswith("ControlPath=") else word)
        for word in ssh_argv(server)
    ]


def connect_rows(ctx: Context, servers: list[Server], parallels: list[int]) -> list[Row]:
    rows: list[Row] = []
    for parallel in parallels:
        down(ctx)
        started = time.perf_counter()
        reports = connect_many(ctx, servers, max_parallel=parallel)
        sane_ms = (time.perf_counter() - started) * 1000
        failed = [r for r in reports if not r["ok"]]
        if failed:
            print(f"  !! {len(failed)} failed to connect, e.g. {failed[0]['error']}")
        fresh = [[*_fresh(s), "true"] for s in servers]
        started = time.perf_counter()
        _ssh_all(fresh, parallel)
        base = (time.perf_counter() - started) * 1000
        rows.append(
            (f"connect cold, --max-parallel {parallel} | ssh true, same parallelism", sane_ms, base)
        )
    return rows


def _cpu_ms(pid: int, children: bool = False) -> float:
    """CPU (user + system) process ``pid`` has used, in ms; with ``children``, that of
    its children it has waited for too (a shell's ``sleep``). 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and every process under it (an sshd: its sessions and their shells)."""
    found, todo = [], [pid]
    while todo:
        here = todo.pop()
        found.append(here)
        try:
            with open(f"/proc/{here}/task/{here}/children", encoding="ascii") as fh:
                todo += [int(child) for child in fh.read().split()]
        except OSError:
            pass
    return found


class Sides:
    """The CPU of a warm fleet run, by who spends it: the orchestrator's side (sane's
    process, every thread; the tmux server; the panes' ssh clients) and the servers'
    side (each server's sshd and everything under it: on a real fleet that is the
    servers' own CPU, on this loopback fleet it shares the 2 cores). Read from
    ``/proc`` before and after, so it does not depend on the load (clock ticks: 10 ms
    in all, not per server)."""

    def __init__(self, ctx: Context, fleet: Fleet) -> None:
        self.tmux_pid = int(ctx.server.run("display-message", "-p", "#{pid}").strip())
        self.ssh_pids = [
            int(pid)
            for pid in ctx.server.run("list-panes", "-a", "-F", "#{pane_pid}").split()
            if pid.isdigit()
        ]
        self.sshd_pids = [srv.pid for srv in fleet.servers if srv.pid is not None]

    def sample(self) -> dict[str, float]:
        own = os.times()
        remote = [pid for sshd in self.sshd_pids for pid in _tree(sshd)]
        return {
            "sane": (own.user + own.system) * 1000,
            "tmux": _cpu_ms(self.tmux_pid),
            "ssh": sum(_cpu_ms(pid) for pid in self.ssh_pids),
            "servers": sum(_cpu_ms(pid, children=True) for pid in remote),
        }

    def measure(self, fn: Callable[[], object], repeat: int) -> tuple[float, dict[str, float]]:
        """Of ``repeat`` calls: the median wall ms, and the mean CPU ms of each side
        (a mean: CPU comes in clock ticks of 10 ms, a median of ticks says little)."""
        walls: list[float] = []
        spent: dict[str, list[float]] = {}
        for _ in range(repeat):
            before = self.sample()
            started = time.perf_counter()
            fn()
            walls.append((time.perf_counter() - started) * 1000)
            after = self.sample()
            for key in ("sane", "tmux", "ssh", "servers"):
                spent.setdefault(key, []).append(after[key] - before[key])
        return statistics.median(walls), {k: statistics.fmean(v) for k, v in spent.items()}


def _cpu_line(what: str, count: int, cpu: dict[str, float]) -> str:
    local = cpu["sane"] + cpu["tmux"] + cpu["ssh"]
    return (
        f"  CPU per server, {what}: orchestrator {local / count:.2f} ms (its process "
        f"{cpu['sane'] / count:.2f}, tmux {cpu['tmux'] / count:.2f}, ssh clients "
        f"{cpu['ssh'] / count:.2f}); servers' sshd and shells {cpu['servers'] / count:.2f} ms"
        f" ({local:.0f} / {cpu['servers']:.0f} ms in all)"
    )


def warm_rows(ctx: Context, servers: list[Server], fleet: Fleet) -> list[Row]:
    """Warm ``true`` and ``sleep 1`` on every server at once, each beside parallel-ssh's
    ``run_command`` on a connected client (the peer a warm run is measured against:
    issue 17), in the same run; warm ``true`` also beside ``ssh true`` over the panes'
    ControlMasters. The CPU per server of each side is printed for sane and for
    parallel-ssh (whose orchestrator is this process alone)."""
    count = len(servers)
    fleet_run(ctx, servers, "true", max_parallel=count)  # every pane up
    sides = Sides(ctx, fleet)
    over_cm = [[*ssh_argv(s), "true"] for s in servers]
    peer = _pssh_client(fleet, count)
    rows: list[Row] = []
    for command, repeat in {"true": 8, "sleep 1": 3}.items():
        run = functools.partial(fleet_run, ctx, servers, command, max_parallel=count)
        wall, cpu = sides.measure(run, repeat)
        print(_cpu_line(f"sane {command}", count, cpu), flush=True)
        if command == "true":
            base = timed(lambda: _ssh_all(over_cm, count), 3)
            rows.append(("warm true | ssh true over the panes' ControlMasters", wall, base))
        if peer is not None:
            peer_wall, peer_cpu = sides.measure(functools.partial(_pssh_run, peer, command), repeat)
            print(_cpu_line(f"parallel-ssh {command}", count, peer_cpu), flush=True)
            rows.append((f"warm {command} | parallel-ssh run_command (connected)", wall, peer_wall))
        else:
            rows.append((f"warm {command} | no peer", wall, None))
    return rows


def _pssh_client(fleet: Fleet, count: int) -> Any:
    """parallel-ssh's client for the fleet, connected (as sane's panes are); None when
    it is not installed."""
    try:
        from pssh.clients import ParallelSSHClient  # type: ignore[import-not-found, import-untyped, unused-ignore]
        from pssh.config import HostConfig  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        print("  (parallel-ssh not installed: the peer's rows are not measured)")
        return None
    client = ParallelSSHClient(
        [s.host for s in fleet.servers],
        user="root",
        pkey=str(fleet.client_key),
        pool_size=count,
        host_config=[HostConfig(port=s.port) for s in fleet.servers],
    )
    _pssh_run(client, "true")  # connected
    return client


def _pssh_run(client: Any, command: str) -> None:
    """``command`` on every host at once; every exit status read (any failure aborts)."""
    outputs = client.run_command(command)
    client.join(outputs)
    bad = [o for o in outputs if o.exit_code != 0]
    if bad:
        raise SystemExit(f"parallel-ssh {command!r} failed on {len(bad)}: {bad[0].exception}")


def progress_rows(ctx: Context, servers: list[Server]) -> list[Row]:
    """What the live display costs the work it shows: warm ``true`` and a health read
    with ``sane.cli._stream.LiveProgress`` drawing on a real pseudo-terminal (120x40,
    drained by a thread as a terminal would read it), against the same calls with no
    listener."""
    import fcntl
    import struct
    import termios
    import threading

    from sane.cli._stream import LiveProgress
    from sane.fleet.health import check

    count = len(servers)
    fleet_run(ctx, servers, "true", max_parallel=count)  # every pane up
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    terminal = os.fdopen(slave, "w", encoding="utf-8")

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()

    def shown(work: Callable[[Any], object]) -> Callable[[], None]:
        def run() -> None:
            display = LiveProgress(terminal, title="bench", spinner=False, output=False)
            try:
                work(display)
            finally:
                display.close()

        return run

    rows: list[Row] = []
    try:
        rows.append(
            (
                "warm true, live display on a terminal | no listener",
                timed(shown(lambda d: fleet_run(ctx, servers, "true", count, on_event=d)), 5),
                timed(lambda: fleet_run(ctx, servers, "true", max_parallel=count), 5),
            )
        )
        rows.append(
            (
                "health, live display on a terminal | no listener",
                timed(shown(lambda d: check(ctx.home, servers, None, count, on_event=d)), 3),
                timed(lambda: check(ctx.home, servers, None, count), 3),
            )
        )
    finally:
        terminal.close()
        os.close(master)
    return rows


def put_rows(ctx: Context, servers: list[Server], fleet: Fleet, work: Path) -> list[Row]:
    count = len(servers)
    source = work / "payload"
    rows: list[Row] = []
    scp_ms: list[float] = []
    sane_ms: list[float] = []
    for round_ in range(3):
        data = os.urandom(PUT_BYTES)  # new content: the sha256 cache never skips
        source.write_bytes(data)
        target = f"/tmp/bench-put-{round_}"
        started = time.perf_counter()
        _check_put(fleet_put(ctx, servers, target, data, max_parallel=count))
        sane_ms.append((time.perf_counter() - started) * 1000)
        scp = [
            ["scp", "-q", "-S", "ssh", *_scp_options(s), str(source), f"{s.host}:{target}.scp"]
            for s in servers
        ]
        started = time.perf_counter()
        _ssh_all(scp, count)
        scp_ms.append((time.perf_counter() - started) * 1000)
    rows.append(
        (
            "fleet put 100 KB | scp over the same ControlMasters",
            statistics.median(sane_ms),
            statistics.median(scp_ms),
        )
    )
    peer = _pssh_copy(fleet, source, count)
    if peer is not None:
        rows.append(
            (
                "fleet put 100 KB | parallel-ssh copy_file (library)",
                statistics.median(sane_ms),
                peer,
            )
        )
    return rows


def _check_put(result: dict[str, Any]) -> None:
    if result["status"] != "completed":
        bad = next(r for r in result["results"] if not r["ok"])
        raise SystemExit(f"fleet put failed: {bad}")


def _scp_options(server: Server) -> list[str]:
    """The ``-F``/``-o``/``-i`` options of sane's own ssh argv, port as scp spells it."""
    argv = ssh_argv(server)[1 : argv_end(server)]
    out: list[str] = []
    it = iter(argv)
    for word in it:
        if word == "-p":
            out += ["-P", next(it)]
        elif word == "-l":
            out += ["-o", f"User={next(it)}"]
        elif word in ("-F", "-o", "-i"):
            out += [word, next(it)]
    return out


def argv_end(server: Server) -> int:
    return ssh_argv(server).index("--")


def _pssh_copy(fleet: Fleet, source: Path, count: int) -> float | None:
    client = _pssh_client(fleet, count)
    if client is None:
        return None

    def copy() -> None:
        import gevent  # type: ignore[import-not-found, import-untyped, unused-ignore]

        gevent.joinall(client.copy_file(str(source), "/tmp/bench-put-pssh"), raise_error=True)

    return timed(copy, 3)


def health_rows(ctx: Context, servers: list[Server], fleet: Fleet) -> list[Row]:
    from sane.fleet.health import check

    doc = '{"status": "healthy", "version": "1"}'
    for srv in fleet.servers:
        (srv.home / ".sane").mkdir(exist_ok=True)
        (srv.home / ".sane/health.json").write_text(doc)
    count = len(servers)
    cat = [[*ssh_argv(s), "cat ~/.sane/health.json"] for s in servers]
    sane_ms = timed(lambda: check(ctx.home, servers, max_parallel=count), 3)
    return [
        (
            "health | cat over the ControlMasters, N at once",
            sane_ms,
            timed(lambda: _ssh_all(cat, count), 3),
        )
    ]


def _pss_kb(pid: int | str) -> int:
    """A process's proportional set size (its share of shared pages), in KB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fds(pid: int | str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _ptys() -> int:
    with open("/proc/sys/kernel/pty/nr", encoding="ascii") as fh:
        return int(fh.read())


def resource_lines(ctx: Context, servers: list[Server], ptys_before: int) -> list[str]:
    """What the connected fleet holds, per server: the tmux server's memory and
    descriptors, the panes' ssh clients (PSS: shared pages counted once in all), sane's
    own process, and the host's pseudo-terminals in use (this fleet's sshd sessions
    included: on a loopback fleet both ends are here; shared with anything else
    running on the machine)."""
    connect_many(ctx, servers, max_parallel=50)  # every pane up (a no-op when they are)
    count = len(servers)
    tmux_pid = int(ctx.server.run("display-message", "-p", "#{pid}").strip())
    pane_pids = [
        int(pid)
        for pid in ctx.server.run("list-panes", "-a", "-F", "#{pane_pid}").split()
        if pid.isdigit()
    ]
    ssh_pss = sum(_pss_kb(pid) for pid in pane_pids)
    ssh_fds = sum(_fds(pid) for pid in pane_pids)
    return [
        f"resources with {count} servers connected (per server):",
        f"  tmux server: PSS {_pss_kb(tmux_pid) / 1024:.1f} MB"
        f" ({_pss_kb(tmux_pid) / count:.1f} KB), {_fds(tmux_pid)} fds"
        f" ({_fds(tmux_pid) / count:.2f})",
        f"  ssh clients in the panes: PSS {ssh_pss / 1024:.1f} MB"
        f" ({ssh_pss / len(pane_pids) / 1024:.2f} MB), {ssh_fds} fds"
        f" ({ssh_fds / len(pane_pids):.1f})",
        f"  sane (this process): PSS {_pss_kb('self') / 1024:.1f} MB, {_fds('self')} fds",
        f"  ptys in use on the host: {_ptys()} ({_ptys() - ptys_before} more than before"
        f" connecting: {(_ptys() - ptys_before) / count:.2f} per server)",
    ]


def bench_size(count: int, parallels: list[int], parts: set[str]) -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix=f"sane-bench-scale-{count}-"))
    srv = TmuxTestServer(f"sane-bench-scale-{os.getpid()}-{count}")
    srv.kill()
    srv.start()
    rows: list[Row] = []
    try:
        with (
            Fleet(count, ready_timeout=max(10.0, count / 10)) as fleet,
            Context(srv.server, home=work / "home") as ctx,
        ):
            registry = Registry(ctx.home)
            servers = [
                Server(
                    name=s.name,
                    host=s.host,
                    port=s.port,
                    user="root",
                    identity_file=str(fleet.client_key),
                    ssh_options={"UserKnownHostsFile": str(fleet.known_hosts)},
                )
                for s in fleet.servers
            ]
            for server in servers:
                registry.add(server)
            ptys_before = _ptys()
            if "connect" in parts:
                rows += connect_rows(ctx, servers, parallels)
            if "warm" in parts:
                rows += warm_rows(ctx, servers, fleet)
            if "put" in parts:
                rows += put_rows(ctx, servers, fleet, work)
            if "health" in parts:
                rows += health_rows(ctx, servers, fleet)
            if "progress" in parts:
                rows += progress_rows(ctx, servers)
            if "resources" in parts:
                for line in resource_lines(ctx, servers, ptys_before):
                    print(line, flush=True)
    finally:
        srv.kill()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="20,100,200,400")
    parser.add_argument("--parallel", default="5,50", help="--max-parallel values to connect with")
    parser.add_argument("--parts", default="connect,warm,put,health,progress,resources")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    parallels = [int(n) for n in args.parallel.split(",")]
    parts = set(args.parts.split(","))
    load = os.getloadavg()[0]
    print(f"bench_scale: sizes {sizes}, load {load:.1f} on {os.cpu_count()} cores")
    table: dict[int, list[Row]] = {}
    for count in sizes:
        print(f"N = {count} (load {os.getloadavg()[0]:.1f})", flush=True)
        table[count] = bench_size(count, parallels, parts)
        print(f"  (load {os.getloadavg()[0]:.1f} at the end)", flush=True)
        for what, mine, base in table[count]:
            # No baseline (the peer not installed): sane's figure alone.
            against = f" vs {base:.0f} ms  ratio {mine / base:.2f}x" if base else ""
            print(f"  {what}: {mine:.0f} ms{against}", flush=True)
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        print(f"per added server, N = {small} -> {large} (ms/server, sane | baseline):")
        for (what, a, base_a), (_, b, base_b) in zip(table[small], table[large], strict=True):
            slope = (b - a) / (large - small)
            base_slope = ((base_b or 0) - (base_a or 0)) / (large - small)
            print(f"  {what}: {slope:.2f} | {base_slope:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
