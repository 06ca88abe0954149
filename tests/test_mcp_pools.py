"""``sane mcp`` serves quick tools from a pool of their own: a ``list_panes`` answers
while calls that wait fill the other pool, whether or not those have a ``timeout``
(``connect`` has none, and its handshakes with a silent server wait 30 s)."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.shared.memory import create_client_server_memory_streams

from sane import tools
from sane.mcp import server as mcp_server
from sane.ops.context import Context

from .test_mcp import document

QUICK = 2  # the quick pool's size here (64 in a real server): two slow calls fill it


def test_every_tool_that_can_wait_is_served_from_the_waiting_pool() -> None:
    quick = {tool.name for tool in tools.TOOLS if tool.quick}
    assert quick == {
        "run_interrupt",
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
        server = mcp_server.build_server(sane_ctx)
        async with (
            create_client_server_memory_streams() as (client, served),
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(lambda: server.run(*served, server.create_initialization_options()))
            async with ClientSession(*client) as session:
                await session.initialize()

                async def call(tool: str, **arguments: Any) -> dict[str, Any]:
                    return document(await session.call_tool(tool, arguments))

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
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    finally:
        listener.close()
        for held_socket in held:
            held_socket.close()
