"""What each MCP client costs a call over Streamable HTTP, each client in a process of
its own: the Python SDK's ``streamable_http_client``, the lean ``http.client`` one
(``bench/lean_mcp_http.py``) and the TypeScript SDK's ``StreamableHTTPClientTransport``,
all calling one ``sane mcp --http``, in turn.

Reproduce (from the repository root, tmux installed; node and tests/ts-client's
node_modules for the TypeScript row)::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp_clients.py --runs 300
    PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp_clients.py --syscalls 200
    PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp_clients.py --profile /tmp/prof

Why a script of its own: in ``bench_mcp.py`` the Python clients share the bench's
process (its heap, its event loop with the stdio session's tasks), so their CPU figure
is not the client's alone. Here each client is a process held warm
(``bench_mcp.LineClient``: connected, tools listed, 20 warm-up calls of each kind) that
gets one JSON line a request and answers with what it measured around the client call
alone: wall time, and its CPU split in user and system time (``getrusage``, node's
``process.cpuUsage``), so a client's own work (Python or JavaScript) shows apart from
its system calls (on loopback a send also runs the receiver's TCP path). N rounds, each
client's ``ping`` and ``run_command`` of ``true`` on a warm dash pane in each round,
the first client rotating round by round; the server's CPU of each request from
``/proc/PID/task/*/schedstat``. ``--syscalls N``: then ``strace -f -c`` attached to
each client for N pings counts its system calls a request. ``--profile DIR``: the
Python SDK's client also runs cProfile around its requests alone, writes
``DIR/python-sdk.prof`` and the script prints its time by package (cProfile's overhead
inflates that process's figures, so its rows then say so).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_mcp import (
    LineClient,
    _process_cpu,
    headline,
    private_tmux,
    ts_client,
    ts_skip_reason,
)

from sane.testing.mcp_http import http_server

PYTHON_CLIENTS = ("python-sdk", "lean")


def _usage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _figures(start: float, user: float, system: float) -> str:
    wall = time.perf_counter() - start
    user_after, system_after = _usage()
    figures = {
        "ms": wall * 1000,
        "user_ms": (user_after - user) * 1000,
        "sys_ms": (system_after - system) * 1000,
    }
    figures["cpu_ms"] = figures["user_ms"] + figures["sys_ms"]
    return json.dumps(figures)


READY = json.dumps({"ready": True, "pid": None})


def _check(doc: dict[str, Any] | None) -> None:
    if not doc or doc.get("status") != "completed" or doc.get("exit_code") != 0:
        raise RuntimeError(f"`true` did not complete: {doc}")


def client_lean(url: str, token: str) -> None:
    from lean_mcp_http import LeanMcpHttp

    lean = LeanMcpHttp(url, token)
    lean.initialize()
    lean.list_tools()
    print(READY, flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        try:
            user, system = _usage()
            start = time.perf_counter()
            if command["op"] == "ping":
                lean.ping()
            else:
                _check(lean.call_tool("run_command", command["arguments"]))
            print(_figures(start, user, system), flush=True)
        except Exception as error:
            print(json.dumps({"error": repr(error)}), flush=True)
    lean.close()


async def client_python_sdk(url: str, token: str, profile: str | None) -> None:
    """The SDK's client as an agent holds it; stdin is read with a blocking call in the
    event loop between requests (none of the client's tasks has work then, the idle
    GET stream included), so a request's figures are the client's alone."""
    import cProfile

    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    profiler = cProfile.Profile() if profile else None
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300)
        ) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await session.list_tools()
        print(READY, flush=True)
        while line := sys.stdin.readline():
            command = json.loads(line)
            try:
                user, system = _usage()
                start = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                try:
                    if command["op"] == "ping":
                        await session.send_ping()
                    else:
                        result = await session.call_tool("run_command", command["arguments"])
                        _check(result.structured_content)
                finally:
                    if profiler is not None:
                        profiler.disable()
                print(_figures(start, user, system), flush=True)
            except Exception as error:
                print(json.dumps({"error": repr(error)}), flush=True)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)


def by_package(path: str, top: int = 12) -> list[tuple[str, float]]:
    """cProfile's own time of each package (site-packages top folder, the standard
    library's module, or the builtin), largest first."""
    import pstats

    stats: Any = pstats.Stats(path)
    total: dict[str, float] = collections.defaultdict(float)
    for (filename, _line, function), row in stats.stats.items():
        own = row[2]
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0]
        elif filename == "~":
            key = function if "socket" in function or "epoll" in function else "other builtins"
        else:
            key = "stdlib " + Path(filename).stem
        total[key] += own
    return sorted(total.items(), key=lambda item: -item[1])[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=300, help="rounds (300)")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the Python SDK client")
    parser.add_argument(
        "--syscalls", type=int, default=0, metavar="N", help="strace N pings of each client"
    )
    parser.add_argument("--client", choices=PYTHON_CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--profile-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client == "lean":
        client_lean(args.url, args.token)
        return 0
    if args.client == "python-sdk":
        import anyio

        anyio.run(client_python_sdk, args.url, args.token, args.profile_file)
        return 0
    if not headline("MCP clients over HTTP", args.runs):
        return 2
    profile = None
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        profile = str(Path(args.profile) / "python-sdk.prof")
    with private_tmux("sane-bench-mcp-clients") as (srv, env, _tmp):
        pane = srv.new_pane("dash")
        with http_server(env) as server:
            clients: dict[str, LineClient] = {}
            try:
                for name in PYTHON_CLIENTS:
                    argv = [sys.executable, __file__, "--client", name]
                    argv += ["--url", server.url, "--token", server.token]
                    if name == "python-sdk" and profile:
                        argv += ["--profile-file", profile]
                    clients[name] = LineClient(argv, env)
                skip = ts_skip_reason()
                if skip is None:
                    target = {"url": server.url, "token": server.token}
                    clients["typescript-sdk"] = ts_client(target, env)
                else:
                    print(f"TypeScript SDK row left out: {skip}", flush=True)
                figures = measure(clients, server.process.pid, pane, args.runs)
                calls = {
                    name: syscalls(client, pane, args.syscalls)
                    for name, client in clients.items()
                    if args.syscalls
                }
            finally:
                for client in clients.values():
                    client.close()
    show(figures, args.runs, profile)
    for name, counts in calls.items():
        print(
            f"\n{name}: system calls a request (strace -f -c, {args.syscalls} pings; the "
            "bench's line to the client, its answer and the CPU readings included):"
        )
        print("  " + ", ".join(f"{call} {count / args.syscalls:.1f}" for call, count in counts))
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    return 0


Figures = dict[str, dict[str, list[float]]]


def measure(clients: dict[str, LineClient], server_pid: int, pane: str, runs: int) -> Figures:
    """Warm-up, then ``runs`` rounds of one ping and one call by each client, the first
    client rotating round by round."""
    commands: dict[str, dict[str, Any]] = {
        "ping": {"op": "ping"},
        "call": {"op": "call", "arguments": {"command": "true", "pane": pane}},
    }
    names = list(clients)
    for _ in range(20):
        for name in names:
            for command in commands.values():
                clients[name].send(command)
    got: Figures = {f"{n} {k}": collections.defaultdict(list) for n in names for k in commands}
    for round_ in range(runs):
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            for kind, command in commands.items():
                before = _process_cpu(server_pid)
                answer = clients[name].send(command)
                after = _process_cpu(server_pid)
                row = got[f"{name} {kind}"]
                for key in ("ms", "user_ms", "sys_ms"):
                    row[key].append(answer[key])
                if before is not None and after is not None:
                    row["server_ms"].append((after - before) * 1000)
    return got


def syscalls(client: LineClient, pane: str, pings: int) -> list[tuple[str, int]]:
    """The system calls ``pings`` pings cost ``client`` (all its threads), most frequent
    first: ``strace -f -c`` attached to it for those requests alone."""
    import subprocess
    import tempfile

    if shutil.which("strace") is None:
        raise RuntimeError("--syscalls needs strace")
    with tempfile.NamedTemporaryFile(prefix="sane-bench-strace-") as out:
        tracer = subprocess.Popen(
            ["strace", "-f", "-c", "-o", out.name, "-p", str(client.process.pid)],
            stderr=subprocess.PIPE,
        )
        assert tracer.stderr is not None
        # strace says so on stderr once the process is attached (a condition, not a
        # delay): requests sent before that would not be counted.
        attached = tracer.stderr.readline()
        if b"attached" not in attached:
            tracer.kill()
            raise RuntimeError(f"strace did not attach: {attached!r}")
        for _ in range(pings):
            client.send({"op": "ping"})
        tracer.send_signal(signal.SIGINT)
        tracer.communicate(timeout=60)
        table = Path(out.name).read_text()
    counts = []
    for line in table.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
            counts.append((fields[-1], int(fields[3])))
    return sorted(counts, key=lambda item: -item[1])[:10]


def show(figures: Figures, runs: int, profile: str | None) -> None:
    print(
        "\nclient request: wall median (p90) | client CPU a request, mean: user + system "
        "| server CPU a request, mean"
    )
    for name, row in figures.items():
        wall = row["ms"]
        p90 = sorted(wall)[int(0.9 * (len(wall) - 1))]
        server = row.get("server_ms")
        note = " (under cProfile)" if profile and name.startswith("python-sdk") else ""
        print(
            f"{name:20s} {statistics.median(wall):7.2f} ms ({p90:.2f}) | "
            f"{statistics.fmean(row['user_ms']):.2f} + {statistics.fmean(row['sys_ms']):.2f} ms"
            f" | {statistics.fmean(server):.2f} ms{note}"
            if server
            else f"{name:20s} {statistics.median(wall):7.2f} ms{note}"
        )
    if profile:
        print(
            f"\nPython SDK client, cProfile own time by package ({profile}, {runs} x 2 requests):"
        )
        for package, seconds in by_package(profile):
            print(f"  {package:55s} {seconds / (2 * runs) * 1000:.3f} ms a request")


if __name__ == "__main__":
    sys.exit(main())
