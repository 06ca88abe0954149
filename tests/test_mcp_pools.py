"""``sane mcp`` serves quick tools from a pool of their own: a ``list_panes`` answers
while calls that wait fill the other pool, whether or not those have a ``timeout``
(``connect`` has none, and its handshakes with a silent server wait 30 s)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.shared.memory import create_client_server_memory_streams

from sane import tools
from sane.mcp import server as mcp_server
from sane.ops.context import Context
from sane.testing.pytest_plugin import TmuxTestServer

from .test_mcp import document

Call = Callable[..., Awaitable[dict[str, Any]]]


@contextlib.asynccontextmanager
async def _served(ctx: Context) -> AsyncIterator[Call]:
    """A client session with a server built now (so the pool sizes set by a test hold):
    ``call(tool, **arguments)`` returns the tool's document."""
    server = mcp_server.build_server(ctx)
    async with (
        create_client_server_memory_streams() as (client, served),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(lambda: server.run(*served, server.create_initialization_options()))
        async with ClientSession(*client) as session:
            await session.initialize()

            async def call(tool: str, **arguments: Any) -> dict[str, Any]:
                return document(await session.call_tool(tool, arguments))

            yield call
        tg.cancel_scope.cancel()


QUICK = 2  # the quick pool's size here (64 in a real server): two slow calls fill it


def test_every_tool_that_can_wait_is_served_from_the_waiting_pool() -> None:
    quick = {tool.name for tool in tools.TOOLS if tool.quick}
    assert quick == {
        "list_panes",
        "server_list",
        "server_add",
        "server_show",
        "server_remove",
        "server_import",
        "deploy_status",
        "deploy_list",
        "read_screen",
        "send_keys",
    }
    for name in ("connect", "fleet_detect", "deploy", "deploy_plan_check", "server_test"):
        assert not mcp_server._is_quick(name)
    # waits up to its grace (no upper bound) for the run it stops: a pool of its own
    assert mcp_server.pool_of("run_interrupt") == "stopping"
    assert {tool.name for tool in tools.TOOLS if tool.pool == "stopping"} == {"run_interrupt"}


def test_list_panes_answers_while_slow_connects_run(
    sane_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_server, "QUICK_CALLS", QUICK)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(QUICK)
    held: list[socket.socket] = []
    accepted = threading.Semaphore(0)

    def accept() -> None:  # accept and never speak: ssh waits for the banner
        with contextlib.suppress(OSError):
            for _ in range(QUICK):
                held.append(listener.accept()[0])
                accepted.release()

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    names = [f"silent{i}" for i in range(QUICK)]

    async def main() -> None:
        async with _served(sane_ctx) as call:
            for name in names:
                added = await call(
                    "server_add",
                    name=name,
                    host="127.0.0.1",
                    port=port,
                    ssh_options={"ConnectTimeout": "120"},
                )
                assert added["ok"], added
            reports: list[dict[str, Any]] = []

            async def connect(name: str) -> None:
                reports.append(await call("connect", servers=[name]))

            async with anyio.create_task_group() as connects:
                for name in names:
                    connects.start_soon(connect, name)
                for _ in names:  # both handshakes under way
                    began = await anyio.to_thread.run_sync(accepted.acquire, True, 60)
                    assert began, "ssh never reached the silent server"
                # Both connects now wait (30 s each); a quick call does not.
                with anyio.fail_after(20):
                    panes = await call("list_panes", all=True)
                assert panes["ok"], panes
                assert reports == []  # the connects still wait
                for held_socket in held:  # let ssh fail now: the test ends
                    held_socket.close()
            assert len(reports) == QUICK

    try:
        anyio.run(main)
    finally:
        listener.close()
        for held_socket in held:
            held_socket.close()


def test_list_panes_answers_while_interrupts_wait_out_their_grace(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Interrupts of runs that ignore C-c each wait their whole grace: as many as the
    quick pool holds (they were served from it) left no thread for a list_panes."""
    monkeypatch.setattr(mcp_server, "QUICK_CALLS", QUICK)
    panes = [tmux_server.new_pane("dash") for _ in range(QUICK)]
    go = tmp_path / "go"
    # C-c is seen (the trap prints got-int: a text the typed line does not hold) but
    # does not stop the run; the file ends it
    command = f"trap 'printf \"%s-%s\\n\" got int' INT; until [ -e {go} ]; do sleep 0.05; done"

    def screen(pane: str) -> str:
        return tmux_server.run("capture-pane", "-p", "-t", pane)

    async def main() -> None:
        async with _served(sane_ctx) as call:
            run_ids = []
            for pane in panes:  # left running, handed over after a short wait
                started = await call("run_command", command=command, pane=pane, timeout=0.5)
                assert started["status"] == "running", started
                run_ids.append(started["run_id"])
            stopped: list[dict[str, Any]] = []

            async def interrupt(run_id: str) -> None:
                stopped.append(await call("run_interrupt", run_id=run_id, grace=120))

            async with anyio.create_task_group() as interrupts:
                for run_id in run_ids:
                    interrupts.start_soon(interrupt, run_id)
                with anyio.fail_after(30):  # each C-c typed: its interrupt now waits
                    while not all("got-int" in screen(pane) for pane in panes):
                        await anyio.sleep(0.05)  # polling a condition, with a deadline
                with anyio.fail_after(20):  # not behind the interrupts (120 s each)
                    listed = await call("list_panes")
                assert listed["ok"], listed
                assert stopped == []  # the interrupts still wait
                go.touch()  # the runs end: the interrupts return
            assert [doc["status"] for doc in stopped] == ["interrupted"] * QUICK, stopped

    anyio.run(main)
