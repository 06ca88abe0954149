"""A/B of two source trees' ``sane mcp --http`` through an MCP SDK's own streamable
HTTP client (the Python SDK's, or ``--client typescript``: the TypeScript SDK's, which
most agent hosts embed), called in turn in the same run: what a server-side change saves
an agent whose client is that SDK's.

Reproduce (from the repository root; OLD_TREE is any checkout, e.g.
``git worktree add /tmp/old main`` or ``git archive main | tar -x -C /tmp/old``)::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp_ab.py /tmp/old . --runs 300
    PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp_ab.py . /tmp/old --runs 300 --ping
    PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp_ab.py /tmp/old . --client typescript

Why a script of its own: on this shared machine (load 5-60) wall figures move by a
factor of three within minutes, so two runs of ``bench_mcp.py`` cannot compare trees.
Here one private tmux server (a warm dash pane per server, each in a session of its
own), one ``sane mcp --http 127.0.0.1:0`` per tree (started in that tree with its
``PYTHONPATH``), one SDK client session each (the TypeScript one in a node process of
its own, ``bench/ts_mcp_client.mjs``, timing each call itself: its wall time and its
CPU); after 20 warm-up calls each, N rounds of one call to each server, the first server
alternating round by round, so the load that moves during the run moves both sides. Per
call: wall time (``time.perf_counter``), the client's CPU (``getrusage`` of this
process, or the TypeScript client's own figure) and the server's (all its threads, from
``/proc/PID/task/*/schedstat``): CPU time moves much less with the load than wall time
does. The call: ``run_command`` of ``true`` (``--ping``: the MCP ``ping``, framing
alone). Linux only (the server CPU figures).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
from bench_mcp import (
    LineClient,
    _own_cpu,
    _process_cpu,
    private_tmux,
    ts_client,
    ts_skip_reason,
)
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from sane.testing.mcp_http import http_server

Timed = tuple[float, float] | None
"""What a call returns: a client in a process of its own times itself (wall seconds, its
CPU seconds); None: the call ran in this process, timed around it here."""


class Side:
    def __init__(self, name: str, call: Callable[[], Awaitable[Timed]], pid: int) -> None:
        self.name, self.call, self.pid = name, call, pid
        self.wall: list[float] = []
        self.client = 0.0
        self.server = 0.0

    async def timed(self) -> None:
        server_before, client_before = _process_cpu(self.pid), _own_cpu()
        start = time.perf_counter()
        own = await self.call()
        wall, client = time.perf_counter() - start, _own_cpu() - client_before
        if own is not None:
            wall, client = own
        self.wall.append(wall)
        self.client += client
        server_after = _process_cpu(self.pid)
        if server_before is not None and server_after is not None:
            self.server += server_after - server_before

    def line(self) -> str:
        calls = len(self.wall)
        return (
            f"{self.name}: wall median {statistics.median(self.wall) * 1000:.2f} ms, "
            f"CPU a call: client {self.client / calls * 1000:.2f} ms, "
            f"server {self.server / calls * 1000:.2f} ms"
        )


def _typescript(
    url: str, token: str, env: dict[str, str], pane: str, ping: bool
) -> tuple[LineClient, Callable[[], Awaitable[Timed]]]:
    """The TypeScript SDK's client of one server, held warm in its own process; a call
    returns its own figures."""
    client = ts_client({"url": url, "token": token}, env)
    command: dict[str, object] = {"op": "ping"}
    if not ping:
        command = {"op": "call", "arguments": {"command": "true", "pane": pane}}

    async def call() -> Timed:
        return client.request(command)

    return client, call


async def compare(
    trees: dict[str, Path],
    env: dict[str, str],
    panes: dict[str, str],
    runs: int,
    ping: bool,
    typescript: bool,
) -> list[Side]:
    async with contextlib.AsyncExitStack() as stack:
        sides = []
        for name, tree in trees.items():
            server = stack.enter_context(http_server(env, tree=str(tree)))
            url, token, pid = server.url, server.token, server.process.pid
            if typescript:
                line_client, timed_call = _typescript(url, token, env, panes[name], ping)
                stack.callback(line_client.close)
                sides.append(Side(name, timed_call, pid))
                continue
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=httpx2.Timeout(30, read=300),
                )
            )
            read, write = await stack.enter_async_context(
                streamable_http_client(url, http_client=client)
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            await session.list_tools()  # the client caches the output schemas it checks with

            async def call(session: ClientSession = session, pane: str = panes[name]) -> Timed:
                if ping:
                    await session.send_ping()
                    return None
                result = await session.call_tool("run_command", {"command": "true", "pane": pane})
                doc = result.structured_content or {}
                if doc.get("status") != "completed" or doc.get("exit_code") != 0:
                    raise RuntimeError(f"`true` did not complete: {doc}")
                return None

            sides.append(Side(name, call, pid))
        for _ in range(20):
            for side in sides:
                await side.call()
        for round_ in range(runs):
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                await side.timed()
        return sides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("a", type=Path, help="tree A (e.g. the old code)")
    parser.add_argument("b", type=Path, help="tree B (e.g. the change)")
    parser.add_argument("--runs", type=int, default=300, help="calls to each server (300)")
    parser.add_argument("--ping", action="store_true", help="time MCP ping, not run_command")
    parser.add_argument(
        "--client",
        choices=("python", "typescript"),
        default="python",
        help="whose SDK client calls the servers (python)",
    )
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is not installed", file=sys.stderr)
        return 2
    typescript = args.client == "typescript"
    if typescript and (reason := ts_skip_reason()) is not None:
        print(f"no TypeScript client: {reason}", file=sys.stderr)
        return 2
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    print(
        f"sane mcp --http A/B through the {args.client} SDK's client: N={args.runs}, "
        f"{'ping' if args.ping else 'run_command true'}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; A = {trees['A']}, B = {trees['B']}",
        flush=True,
    )
    with private_tmux("sane-bench-mcp-ab") as (srv, env, _):
        # A session per side: a server's control client attaches to its pane's session
        # and gets the output of every pane there, from tmux in the order the clients
        # attached. In one session each server also read the other's runs, and A heard
        # of its own first (the same tree on both sides, TypeScript client, load 20-30:
        # B / A wall 1.26x and 1.08x; apart 0.96x and 0.95x, Python client 0.82x:
        # wall medians of an A/A move ~20% either way at that load, CPU is the measure).
        for name in trees:
            srv.run("new-session", "-d", "-s", f"ab-{name}", "-x", "200", "-y", "50", "dash")
        panes = {name: srv.new_pane("dash", session=f"ab-{name}") for name in trees}
        sides = anyio.run(compare, trees, env, panes, args.runs, args.ping, typescript)
    for side in sides:
        print(side.line())
    a, b = sides
    print(
        f"B / A: wall {statistics.median(b.wall) / statistics.median(a.wall):.2f}x, "
        f"client CPU {b.client / a.client:.2f}x, server CPU "
        + (f"{b.server / a.server:.2f}x" if a.server else "-")
        + f"; load after {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
