"""Soak: many fleet runs while servers are killed and restarted and links are cut.

Reproduce (repository root, root user, openssh-server installed, ``ip netns`` allowed)::

    .venv/bin/python bench/soak.py --servers 20 --runs 1000 --max-seconds 900
    .venv/bin/python bench/soak.py --servers 5 --runs 120 --fault-every 5 \
        --faults disk_full,second_home,ctrl_c,kill,link

Everything is local: ``--servers`` real sshd, each in its own network namespace on a
private bridge (``sane.testing.fleet``, netns mode), a private tmux server, a private
``$SANE_HOME`` and a private temp directory; all removed at the end. The run loop calls
the library's ``fleet_run`` (every server at once) ``--runs`` times with the command
``echo run-<i>-$FLEET_HOST``, so each server's exact output is known in advance. Every
``--fault-every`` fleet runs a fault (in turn, one of the following) hits one random
server a few milliseconds into the run:

* ``kill``: the server's sshd and all its sessions are SIGKILLed, restarted 0.5-4 s later;
* ``link``: the server's veth goes down, back up 0.5-4 s later (TCP survives);
* ``long_link``: the link stays down 20 s, longer than ssh's keep-alive limit (15 s);
* ``disk_full``: ``$SANE_HOME`` (a 64 MiB tmpfs for this fault) is filled to ENOSPC for
  the whole fleet run, then freed: a run that must record itself fails explicitly;
* ``second_home``: a second ``$SANE_HOME`` on the same tmux server runs its own command
  on every server at the same moment: each of its results is exact or explicit
  (``pane_busy``), and it never types into a run of the first home;
* ``ctrl_c``: the fleet run's stop event (what a Ctrl-C sets) fires a few ms in: every
  run is handed over, then waited on like the runs left ``running``.

Each server result must be one of: exact (``completed``, exit 0, the expected bytes);
``lost`` / ``unreachable`` / ``running`` (timed out) / ``error`` with a code, where any
output shown is a prefix of the expected output. Anything else is a lie and counted.
Runs left ``running`` are waited on again with ``run_wait`` once the faults are over.
Every fleet run's duration is checked against its budget (the run timeout, which
covers connecting, + the runner-install grace + a margin). Processes (ssh clients
under tmux, processes in the servers' namespaces), tmux panes, this process's open
fds and threads, temp files and ``$SANE_HOME`` temp files are counted before the loop
and after recovery.

Prints one JSON report; exits 1 if anything was lied about, late, leaked or lost.
``soak()`` is also called with a tiny configuration by tests/test_soak.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sane.fleet.panes import INSTALL_GRACE
from sane.fleet.registry import Registry, Server
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.ops.run.resume import run_wait
from sane.poll import poll
from sane.testing.fleet import Fleet
from sane.testing.pytest_plugin import TmuxTestServer

EXPLICIT = ("lost", "unreachable", "running", "error")
MARGIN = 3.0  # seconds of slack on a budget: thread scheduling on a loaded 2-core box


@dataclass
class Config:
    servers: int = 20
    runs: int = 1000
    max_seconds: float = 900.0
    timeout: float = 8.0  # each server's run deadline inside a fleet run
    fault_every: int = 20  # one fault every N fleet runs
    long_cut_seconds: float = 20.0
    seed: int = 1
    faults: list[str] = field(
        default_factory=lambda: ["kill", "link", "long_link", "disk_full", "second_home", "ctrl_c"]
    )


@dataclass
class Tally:
    fleet_runs: int = 0
    server_runs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    lies: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    max_server_seconds: float = 0.0
    max_fleet_seconds: float = 0.0
    fleet_seconds: list[float] = field(default_factory=list)
    running: list[tuple[str, str, str]] = field(default_factory=list)  # run_id, server, want
    rewaited: Counter[str] = field(default_factory=Counter)
    # The second home's results ("second_home" fault) and its runs left running.
    intruder: Counter[str] = field(default_factory=Counter)
    intruder_running: list[tuple[str, str, str]] = field(default_factory=list)


# Faults that hit one server on a timer (Chaos); the others change a whole fleet run.
SERVER_FAULTS = ("kill", "link", "long_link")


class Chaos:
    """Schedules faults on timers so they land mid-run, and undoes them all at the end."""

    def __init__(self, fleet: Fleet, cfg: Config, rng: random.Random, tally: Tally) -> None:
        self.fleet, self.cfg, self.rng, self.tally = fleet, cfg, rng, tally
        self.lock = threading.Condition()
        self.busy: set[str] = set()
        self.timers: list[threading.Timer] = []
        self.errors: list[str] = []

    def next_kind(self) -> str:
        return self.cfg.faults[sum(self.tally.faults.values()) % len(self.cfg.faults)]

    def strike(self, kind: str) -> None:
        with self.lock:
            free = [n for n in self.fleet.names if n not in self.busy]
            if not free:
                return
            name = self.rng.choice(free)
            self.busy.add(name)
            self.tally.faults[kind] += 1
            delay = self.rng.uniform(0.0, 0.03)
            hold = self.cfg.long_cut_seconds if kind == "long_link" else self.rng.uniform(0.5, 4.0)
        self._later(delay, self._hit, name, kind, hold)

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        timer = threading.Timer(delay, fn, args)
        timer.daemon = True
        with self.lock:
            self.timers.append(timer)
        timer.start()

    def _hit(self, name: str, kind: str, hold: float) -> None:
        try:
            if kind == "kill":
                self.fleet.stop(name)
            else:
                self.fleet.set_link(name, up=False)
        except Exception as exc:  # recorded; the soak must go on
            self.errors.append(f"{kind} {name}: {exc}")
        self._later(hold, self._heal, name, kind)

    def _heal(self, name: str, kind: str) -> None:
        try:
            if kind == "kill":
                self.fleet.start(name)
            else:
                self.fleet.set_link(name, up=True)
        except Exception as exc:
            self.errors.append(f"heal {kind} {name}: {exc}")
        with self.lock:
            self.busy.discard(name)
            self.lock.notify_all()

    def settle(self) -> None:
        """Wait for pending heals (they are bounded), then make sure all is up."""
        with self.lock:
            self.lock.wait_for(lambda: not self.busy, self.cfg.long_cut_seconds + 10)
        for name in self.fleet.names:
            self.fleet.start(name)
            if self.fleet.mode == "netns":
                self.fleet.set_link(name, up=True)


# -- counting what could leak ----------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().split(b"\0")
    except OSError:
        return "?"
    # sshd retitles itself ("sshd: root@pts/0"): keep the title, drop the tty number.
    first = words[0].decode("utf-8", "replace")
    if first.startswith("sshd:"):
        return "sshd (listener)" if "[listener]" in first else first.split("@")[0]
    return first.rsplit("/", 1)[-1]


def descendants(root: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def snapshot(tmux: TmuxTestServer, fleet: Fleet, home: Path, tmp: Path) -> dict[str, Any]:
    tmux_pid = int(tmux.run("display-message", "-p", "#{pid}").strip())
    under_tmux = Counter(_comm(p) for p in descendants(tmux_pid))
    in_servers: Counter[str] = Counter()
    for srv in fleet.servers:
        if srv.netns is not None:
            out = subprocess.run(
                ["ip", "netns", "pids", srv.netns], capture_output=True, text=True, check=False
            ).stdout
            in_servers.update(_cmdline(int(pid)) for pid in out.split())
    panes = len([p for p in tmux.run("list-panes", "-a", "-F", "#{pane_id}").split() if p])
    temp_files = sorted(
        str(p.relative_to(tmp))
        for p in tmp.rglob("*")
        if p.is_file() or p.is_socket()
        if not {fleet.base, home} & {p, *p.parents}
    )
    home_temps = sorted(str(p.relative_to(home)) for p in home.rglob(".*.tmp"))
    runs_dir = home / "runs"
    return {
        "ssh_clients": under_tmux.get("ssh", 0),
        "processes_under_tmux": sum(under_tmux.values()),
        "processes_in_server_namespaces": sum(in_servers.values()),
        "server_processes": dict(sorted(in_servers.items())),
        "tmux_panes": panes,
        "open_fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "temp_files": temp_files,
        "sane_home_temp_files": home_temps,
        "run_records": len(list(runs_dir.iterdir())) if runs_dir.exists() else 0,
    }


# -- the soak --------------------------------------------------------------------------


def register(home: Path, fleet: Fleet) -> list[Server]:
    registry = Registry(home)
    servers = []
    for s in fleet.servers:
        server = Server(
            name=s.name,
            host=s.host,
            port=s.port,
            user="root",
            identity_file=str(fleet.client_key),
            ssh_options={"UserKnownHostsFile": str(fleet.known_hosts)},
        )
        registry.add(server, replace=True)
        servers.append(server)
    return servers


def judge(tally: Tally, result: dict[str, Any], want: str, budget: float) -> None:
    """File one server's result under exact / explicit, or as a lie or late."""
    tally.server_runs += 1
    status = result["status"]
    seconds = (result["finished_ms"] - result["started_ms"]) / 1000
    tally.max_server_seconds = max(tally.max_server_seconds, seconds)
    if seconds > budget:
        tally.late.append(
            {"server": result["server"], "status": status, "seconds": round(seconds, 3)}
        )
    if status == "completed" and result["exit_code"] == 0 and result["output"] == want:
        tally.outcomes["exact"] += 1
        return
    shown = result.get("output") or ""
    if status in EXPLICIT and want.startswith(shown):
        tally.outcomes[status] += 1
        if status == "error":
            tally.error_codes[(result.get("error") or {}).get("code", "?")] += 1
        if status == "running":
            tally.running.append((result["run_id"], result["server"], want[len(shown) :]))
        return
    tally.lies.append(
        {
            "server": result["server"],
            "status": status,
            "exit_code": result.get("exit_code"),
            "output": shown[:200],
            "want": want,
            "error": result.get("error"),
        }
    )


class HomeFaults:
    """The faults that act on sane's side: a full ``$SANE_HOME``, a second home on the
    same tmux server, a Ctrl-C (the stop event) in the middle of a fleet run."""

    def __init__(
        self, tmux: TmuxTestServer, home: Path, cfg: Config, rng: random.Random, tally: Tally
    ) -> None:
        self.tmux, self.home, self.cfg, self.rng, self.tally = tmux, home, cfg, rng, tally
        self.errors: list[str] = []
        self.mounted = False

    def mount_home(self) -> None:
        """``disk_full`` needs a home it can fill: a small tmpfs of its own."""
        self.home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(self.home)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"disk_full needs a tmpfs home: {done.stderr.strip()}")
        self.mounted = True

    def unmount_home(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.home)], capture_output=True, check=False)
            self.mounted = False

    def fleet_run(self, kind: str, ctx: Context, servers: list[Server], i: int) -> Any:
        """Fleet run ``i`` under fault ``kind``."""
        command = f"echo run-{i}-$FLEET_HOST"
        self.tally.faults[kind] += 1
        if kind == "ctrl_c":
            stop = threading.Event()
            timer = threading.Timer(self.rng.uniform(0.002, 0.03), stop.set)
            timer.start()
            try:
                return fleet_run(
                    ctx,
                    servers,
                    command,
                    max_parallel=len(servers),
                    timeout=self.cfg.timeout,
                    stop=stop,
                )
            finally:
                timer.cancel()
        if kind == "disk_full":
            filler = self.home / "filler"
            try:
                with open(filler, "wb") as fh:
                    while True:
                        fh.write(b"\0" * (1 << 20))
                        fh.flush()
            except OSError:
                pass  # ENOSPC: full
            try:
                return fleet_run(
                    ctx, servers, command, max_parallel=len(servers), timeout=self.cfg.timeout
                )
            finally:
                filler.unlink(missing_ok=True)
        if kind == "second_home":
            other, box = Context(self.tmux.server, home=self.home.parent / "home-2"), {}

            def intrude() -> None:
                box["result"] = fleet_run(
                    other,
                    servers,
                    f"echo intruder-{i}-$FLEET_HOST",
                    max_parallel=len(servers),
                    timeout=self.cfg.timeout,
                )

            thread = threading.Thread(target=intrude)
            thread.start()
            try:
                return fleet_run(
                    ctx, servers, command, max_parallel=len(servers), timeout=self.cfg.timeout
                )
            finally:
                thread.join()
                for result in box.get("result", {"results": []})["results"]:
                    self._judge_intruder(result, f"intruder-{i}-{result['server']}\n")
                self._settle_intruder(other)
                other.close()
        raise ValueError(f"unknown fault {kind}")

    def warm(self, ctx: Context, servers: list[Server]) -> None:
        """Two homes' fleet runs at once, before the first snapshot: the worker pool
        (threads kept for reuse) reaches the size the ``second_home`` fault needs, so
        the thread count before and after compares like with like. The runs sleep, so
        the two overlap whatever the load (with ``true`` they could end one after the
        other, the pool then half its size: 10 servers gave 12 threads before, 22 after)."""
        other = Context(self.tmux.server, home=self.home.parent / "home-2")
        try:
            thread = threading.Thread(
                target=fleet_run,
                args=(other, servers, "sleep 1"),
                kwargs={"max_parallel": len(servers)},
            )
            thread.start()
            fleet_run(ctx, servers, "sleep 1", max_parallel=len(servers))
            thread.join()
        finally:
            other.close()

    def _judge_intruder(self, result: dict[str, Any], want: str) -> None:
        status, shown = result["status"], result.get("output") or ""
        if status == "completed" and result["exit_code"] == 0 and shown == want:
            self.tally.intruder["exact"] += 1
        elif status in EXPLICIT and want.startswith(shown):
            code = (result.get("error") or {}).get("code", "")
            self.tally.intruder[f"{status}:{code}" if code else status] += 1
            if status == "running":
                self.tally.intruder_running.append(
                    (result["run_id"], result["server"], want[len(shown) :])
                )
        else:
            self.tally.lies.append(
                {
                    "second_home": True,
                    "server": result["server"],
                    "status": status,
                    "output": shown[:200],
                    "want": want,
                }
            )

    def _settle_intruder(self, other: Context) -> None:
        """The second home's runs left running end now, exactly or explicitly."""
        for run_id, server, rest in self.tally.intruder_running:
            r = run_wait(other, run_id, timeout=self.cfg.timeout + 20)
            ok = (r["status"] == "completed" and r["output"] == rest) or (
                r["status"] != "completed" and rest.startswith(r["output"])
            )
            if not ok:
                self.tally.lies.append({"second_home": True, "server": server, "rewait": dict(r)})
        self.tally.intruder_running.clear()

    def close(self) -> None:
        self.unmount_home()


def recover(ctx: Context, servers: list[Server], cfg: Config, limit: float) -> bool:
    """After the faults: every server answers exactly again within ``limit`` seconds."""

    def answered() -> bool:
        res = fleet_run(
            ctx,
            servers,
            "echo recovered-$FLEET_HOST",
            max_parallel=len(servers),
            timeout=cfg.timeout,
        )
        return all(r["ok"] and r["output"] == f"recovered-{r['server']}\n" for r in res["results"])

    return bool(poll(answered, limit, first=0.5, cap=2.0))


def soak(cfg: Config) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    tally = Tally()
    started = time.monotonic()
    fleet = Fleet(cfg.servers, "netns")
    tmp = Path(tempfile.mkdtemp(prefix="sane-soak-"))
    old_tempdir = tempfile.tempdir
    tempfile.tempdir = str(tmp)  # ControlMaster sockets and any temp file land here
    tmux = TmuxTestServer(f"sane-soak-{os.getpid()}-{rng.randrange(10**6)}")
    report: dict[str, Any] = {"config": asdict(cfg)}
    ctx: Context | None = None
    home_faults: HomeFaults | None = None
    try:
        home = tmp / "home"
        home_faults = HomeFaults(tmux, home, cfg, rng, tally)
        if "disk_full" in cfg.faults:
            home_faults.mount_home()
        servers = register(home, fleet)
        tmux.start()
        ctx = Context(tmux.server, home=home)
        if not recover(ctx, servers, cfg, 60):
            raise RuntimeError("the fleet did not answer before the soak")
        if "second_home" in cfg.faults:
            home_faults.warm(ctx, servers)
        before = snapshot(tmux, fleet, home, tmp)
        chaos = Chaos(fleet, cfg, rng, tally)
        # Each server's deadline covers connecting; one that answered may take up to
        # INSTALL_GRACE more to take the runner (see docs/reliability.md).
        budget = cfg.timeout + INSTALL_GRACE + MARGIN
        for i in range(cfg.runs):
            if time.monotonic() - started > cfg.max_seconds:
                break
            kind = chaos.next_kind() if i % cfg.fault_every == cfg.fault_every // 2 else None
            if kind in SERVER_FAULTS:
                chaos.strike(kind)
            t0 = time.monotonic()
            if kind is not None and kind not in SERVER_FAULTS:
                res = home_faults.fleet_run(kind, ctx, servers, i)
            else:
                res = fleet_run(
                    ctx,
                    servers,
                    f"echo run-{i}-$FLEET_HOST",
                    max_parallel=len(servers),
                    timeout=cfg.timeout,
                )
            took = time.monotonic() - t0
            tally.fleet_runs += 1
            tally.fleet_seconds.append(took)
            tally.max_fleet_seconds = max(tally.max_fleet_seconds, took)
            for result in res["results"]:
                judge(tally, result, f"run-{i}-{result['server']}\n", budget)
        chaos.settle()
        for run_id, server, rest in tally.running:  # they end now, exactly or lost
            r = run_wait(ctx, run_id, timeout=cfg.timeout + 20)
            if r["status"] == "completed" and r["exit_code"] == 0:
                final = "exact" if r["output"] == rest else "lie"
            else:  # explicit, and whatever it shows must be the real output's start
                final = r["status"] if rest.startswith(r["output"]) else "lie"
            tally.rewaited[final] += 1
            if final == "lie":
                tally.lies.append({"server": server, "run_id": run_id, "rewait": dict(r)})
        recovered = recover(ctx, servers, cfg, 60)
        after = snapshot(tmux, fleet, home, tmp)
        # A server cut off while a session was open keeps that session (sshd and its
        # shell) until the client's FIN, retransmitted across the partition, gets
        # through: the server's side, not sane's. Give it a bounded while, and say how long.
        settle_started = time.monotonic()

        def servers_settled() -> bool:
            nonlocal after
            after = snapshot(tmux, fleet, home, tmp)
            return bool(
                after["processes_in_server_namespaces"] <= before["processes_in_server_namespaces"]
            )

        poll(servers_settled, 180, first=0.5, cap=5.0)
        report["server_sessions_settle_seconds"] = round(time.monotonic() - settle_started, 1)
        loop_s = sorted(tally.fleet_seconds)
        report.update(
            fleet_runs=tally.fleet_runs,
            server_runs=tally.server_runs,
            outcomes=dict(tally.outcomes),
            error_codes=dict(tally.error_codes),
            running_rewaited=dict(tally.rewaited),
            faults=dict(tally.faults),
            second_home_outcomes=dict(tally.intruder),
            fault_errors=chaos.errors,
            lies=tally.lies[:20],
            lie_count=len(tally.lies),
            late=tally.late[:20],
            late_count=len(tally.late),
            budget_seconds=budget,
            max_server_seconds=round(tally.max_server_seconds, 3),
            max_fleet_run_seconds=round(tally.max_fleet_seconds, 3),
            median_fleet_run_ms=round(loop_s[len(loop_s) // 2] * 1000, 1) if loop_s else None,
            recovered=recovered,
            before=before,
            after=after,
        )
    finally:
        if ctx is not None:
            ctx.close()
        tmux_pid = None
        if home_faults is not None:
            home_faults.close()
        with contextlib.suppress(Exception):  # the server may already be gone
            tmux_pid = int(tmux.run("display-message", "-p", "#{pid}").strip())
        tmux.kill()
        fleet.close()
        tempfile.tempdir = old_tempdir
        leftover = descendants(tmux_pid) if tmux_pid is not None else []
        report["after_teardown"] = {
            "processes_left_under_tmux": len(leftover),
            "temp_files_left": sorted(
                str(p.relative_to(tmp))
                for p in tmp.rglob("*")
                if (p.is_file() or p.is_socket()) and "home" not in p.relative_to(tmp).parts
            ),
        }
        shutil.rmtree(tmp, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["verdict"] = verdict(report)
    return report


def verdict(report: dict[str, Any]) -> list[str]:
    """What went wrong (empty: nothing)."""
    problems = []
    if report.get("lie_count"):
        problems.append(f"{report['lie_count']} results were neither exact nor explicit")
    if report.get("late_count"):
        problems.append(f"{report['late_count']} results came after their budget")
    if not report.get("recovered"):
        problems.append("the fleet did not answer exactly again after the faults")
    if report.get("fault_errors"):
        problems.append("faults could not be injected or healed")
    before, after = report.get("before"), report.get("after")
    if before and after:
        for key in (
            "ssh_clients",
            "processes_under_tmux",
            "processes_in_server_namespaces",
            "tmux_panes",
            "open_fds",
            "threads",
            "temp_files",
            "sane_home_temp_files",
        ):
            if after[key] != before[key]:
                problems.append(f"{key}: {before[key]} before, {after[key]} after")
    left = report.get("after_teardown", {})
    if left.get("processes_left_under_tmux") or left.get("temp_files_left"):
        problems.append(f"left after teardown: {left}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--timeout", type=float, default=8.0)
    parser.add_argument("--fault-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--faults",
        default=",".join(Config().faults),
        help="comma-separated, used in turn (default: all six)",
    )
    args = parser.parse_args()
    cfg = Config(
        servers=args.servers,
        runs=args.runs,
        max_seconds=args.max_seconds,
        timeout=args.timeout,
        fault_every=args.fault_every,
        seed=args.seed,
        faults=[f for f in args.faults.split(",") if f],
    )
    report = soak(cfg)
    json.dump(report, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 1 if report["verdict"] else 0


if __name__ == "__main__":
    sys.exit(main())
