"""A stopped fleet run never types into servers it had not started (issues #17 item 3,
#15): after a Ctrl-C (the CLI's soft stop), a cancelled MCP call or a server's deadline
spent connecting, a server whose turn had not come, or whose command was about to be
typed, is reported ``not_started`` (nothing typed, its pane free), not typed into and
handed over as ``running``. Before, every such server got the command and came back
``running``, its pane busy. Real sshd on loopback, a real tmux server per test."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.events import Event
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.ops.list_panes import list_panes
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_wait
from sane.testing.fleet import register
from sane.testing.pytest_plugin import FleetFactory, TmuxTestServer

from .conftest import cli
from .test_ctrl_c import _interrupt_when
from .test_mcp import RAW_INITIALIZE, _reap, raw_mcp


def _stop_at_first_start(stop: threading.Event) -> Any:
    """An event listener that sets ``stop`` as the first server is started: that one's
    command is about to be typed (the stop lands mid-batch, in the typing thread's own
    turn), no other server's turn has come."""

    def on_event(event: Event) -> None:
        if event["event"] == "started":
            stop.set()

    return on_event


def assert_typed_only_where_reported(
    ctx: Context, result: dict[str, Any], log: Path
) -> list[dict[str, Any]]:
    """Every server either ran (its line in ``log``, once its run is waited on) or is
    ``not_started`` with the stop's reason and a free pane; the started ones."""
    started = [r for r in result["results"] if r["status"] != "not_started"]
    for report in started:
        assert report["status"] in ("running", "completed"), report
        if report["status"] == "running":
            rest = run_wait(ctx, report["run_id"], timeout=30)
            assert rest["status"] == "completed", rest
    skipped = [r for r in result["results"] if r["status"] == "not_started"]
    for report in skipped:
        assert report["ok"] is False and report["exit_code"] is None, report
        assert report["error"]["code"] == "not_started", report
        assert report["error"]["details"]["reason"] == "cancelled", report
        assert "run_id" not in report, report
    assert result["counts"]["not_started"] == len(skipped)
    typed = log.read_text().split() if log.exists() else []
    assert sorted(typed) == sorted(r["server"] for r in started), (typed, result)
    panes = list_panes(ctx, all_sessions=True)["panes"]
    assert not [p for p in panes if p["busy"]], panes
    return started


def assert_all_exact(ctx: Context, servers: list[Any]) -> None:
    """A plain fleet run afterwards: every server's pane takes it, exactly."""
    after = fleet_run(ctx, servers, "echo $FLEET_HOST", max_parallel=len(servers))
    assert [(r["status"], r["exit_code"], r["output"]) for r in after["results"]] == [
        ("completed", 0, f"{s.name}\n") for s in servers
    ], after


def test_a_stop_mid_batch_types_no_warm_server_after_it(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    """Warm panes, typed by the fleet loop: the stop comes as the first server starts.
    The loop sends a wave's lines in one write and looks at the stop just before it,
    so none is typed, that first one included (each is ``not_started``)."""
    servers = register(sane_ctx.home, ssh_fleet)
    fleet_run(sane_ctx, servers, "true", max_parallel=3)  # every pane warm
    log, stop = tmp_path / "typed", threading.Event()
    result = fleet_run(
        sane_ctx,
        servers,
        f"echo $FLEET_HOST >> {log}",
        max_parallel=3,
        stop=stop,
        on_event=_stop_at_first_start(stop),
    )
    started = assert_typed_only_where_reported(sane_ctx, result, log)
    assert started == [], result
    assert_all_exact(sane_ctx, servers)


def test_a_stop_while_a_server_connects_types_nothing_there(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    """Cold panes, each opened by its own thread: the stop comes as the first server
    starts connecting; its thread looks just before typing and types nothing, and no
    other server is even connected."""
    servers = register(sane_ctx.home, ssh_fleet)
    log, stop = tmp_path / "typed", threading.Event()
    result = fleet_run(
        sane_ctx,
        servers,
        f"echo $FLEET_HOST >> {log}",
        max_parallel=1,
        stop=stop,
        on_event=_stop_at_first_start(stop),
    )
    assert assert_typed_only_where_reported(sane_ctx, result, log) == []
    assert result["status"] == "failed", result
    assert_all_exact(sane_ctx, servers)


def test_a_run_stopped_before_typing_types_nothing_and_frees_its_pane(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """The check in the thread that types (``command._type``): a stop already set is
    ``not_started``; the pane is free and a later run works. Before, the command was
    typed and handed over at once as ``running``."""
    pane = tmux_server.new_pane("bash")
    marker, stop = tmp_path / "ran", threading.Event()
    stop.set()
    with pytest.raises(errors.NotStarted) as caught:
        run_command(sane_ctx, f"touch {marker}", pane=pane, options=RunOptions(stop=stop))
    assert caught.value.details["reason"] == "cancelled"
    after = run_command(sane_ctx, "echo free", pane=pane)
    assert (after["status"], after["output"]) == ("completed", "free\n")
    assert not marker.exists()


def test_ctrl_c_on_a_fleet_run_of_20_servers_names_what_ran_and_types_no_other(
    cli_env: dict[str, str], sane_ctx: Context, make_fleet: FleetFactory, tmp_path: Path
) -> None:
    """SIGINT to `sane fleet run --max-parallel 2` on 20 warm servers once a run has
    started: `cancelled` (exit 130) naming the runs that go on and the servers not
    started; only the named runs were typed; afterwards every pane takes a plain run.
    Before: all 20 were typed and reported `running`."""
    servers = register(sane_ctx.home, make_fleet(20))
    fleet_run(sane_ctx, servers, "true", max_parallel=20)  # every pane warm
    log, started = tmp_path / "typed", tmp_path / "started"
    code, doc = _interrupt_when(
        [
            "fleet",
            "run",
            "--all",
            "--max-parallel",
            "2",
            "--timeout",
            "60",
            f"echo $FLEET_HOST >> {log}; touch {started}; sleep 5",
        ],
        cli_env,
        started,
    )
    assert code == 130 and doc["error"]["code"] == "cancelled", doc
    details = doc["error"]["details"]
    assert details["not_started"], doc
    assert_typed_only_where_reported(sane_ctx, doc, log)
    assert sorted(details["not_started"]) == sorted(
        r["server"] for r in doc["results"] if r["status"] == "not_started"
    )
    assert details["runs"] == {
        r["server"]: r["run_id"] for r in doc["results"] if r["status"] == "running"
    }
    assert "not started, nothing typed there" in doc["error"]["message"]
    assert_all_exact(sane_ctx, servers)


def test_a_cancelled_mcp_fleet_run_types_no_more_and_frees_every_pane(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    """The MCP client's own request timeout cancels a fleet_run (one server at a time):
    the run it had typed is interrupted (``on_cancel`` ``interrupt``), the servers
    whose turn had not come are never typed into, and every pane is free at once for
    the next call, which is exact on all. Before: each later server got the command
    after the cancellation and kept its pane busy with it."""
    import anyio
    from mcp import MCPError

    from .test_mcp import with_session

    servers = register(sane_ctx.home, ssh_fleet)
    names = [s.name for s in servers]
    log = tmp_path / "typed"

    async def body(session: Any, call: Any) -> None:
        warm = await call("fleet_run", command="true", servers=names, max_parallel=3)
        assert warm["status"] == "completed", warm
        with pytest.raises(MCPError):
            await session.call_tool(
                "fleet_run",
                {
                    "command": f"echo $FLEET_HOST >> {log}; sleep 600",
                    "servers": names,
                    "max_parallel": 1,
                    "timeout": 600,
                },
                read_timeout_seconds=2,
            )
        with anyio.fail_after(30):
            while True:
                listing = await call("list_panes", all=True)
                if not [p for p in listing["panes"] if p["busy"]]:
                    break
                await anyio.sleep(0.05)  # polling a condition, with a deadline
        after = await call("fleet_run", command="echo $FLEET_HOST", servers=names)
        assert [(r["status"], r["output"]) for r in after["results"]] == [
            ("completed", f"{name}\n") for name in names
        ], after

    with_session(cli_env, body)
    typed = log.read_text().split() if log.exists() else []
    assert typed in ([], names[:1]), typed


def test_a_cancelled_mcp_fleet_run_frees_its_panes_and_every_run_id_shown_is_accepted(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any
) -> None:
    """The MCP client's own request timeout cancels a fleet_run on 3 servers (default
    max_parallel: all typed). Every run id list_panes shows right after is taken over
    by run_wait, which answers the interrupted ending (never run_not_found), and then
    the panes are free: the next fleet_run, sent at once, is exact on every server.
    Before: the ids were refused (``run_not_found``) and the panes stayed busy ~2.5 s,
    the next fleet_run getting ``pane_busy`` naming them."""
    import time

    import anyio
    from mcp import MCPError

    from .test_mcp import with_session

    servers = register(sane_ctx.home, ssh_fleet)
    names = [s.name for s in servers]

    async def body(session: Any, call: Any) -> None:
        warm = await call("fleet_run", command="true", servers=names)
        assert warm["status"] == "completed", warm
        panes = {p["pane_id"] for p in (await call("list_panes", all=True))["panes"]}
        with pytest.raises(MCPError):
            await session.call_tool(
                "fleet_run",
                {"command": "sleep 600", "servers": names, "timeout": 600},
                read_timeout_seconds=2,
            )
        cancelled_at = time.monotonic()
        listing = await call("list_panes", all=True)
        shown = [p["run_id"] for p in listing["panes"] if p["busy"] and p["pane_id"] in panes]
        with anyio.fail_after(120):  # a deadline for a loaded machine, not a speed goal
            for run_id in shown:
                ended = await call("run_wait", run_id=run_id, timeout=60)
                assert (ended["run_id"], ended["status"]) == (run_id, "interrupted"), ended
        after_listing = await call("list_panes", all=True)
        freed_after = time.monotonic() - cancelled_at
        assert not [p for p in after_listing["panes"] if p["busy"]], after_listing
        after = await call("fleet_run", command="echo $FLEET_HOST", servers=names)
        assert [(r["status"], r["output"]) for r in after["results"]] == [
            ("completed", f"{name}\n") for name in names
        ], after
        print(f"{len(shown)} run ids shown; free {freed_after * 1000:.0f} ms after the cancel")

    with_session(cli_env, body)


def test_an_interrupted_ssh_run_is_asked_about_soon_not_after_the_remote_quiet_period(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """After sane's own C-c the shell is expected back at its prompt: the watch that
    follows an interrupted run (``run_interrupt``, a cancelled call's, a timeout's)
    asks after INTERRUPT_QUIET on an ssh pane too. Before, the interrupt's watch was a
    plain one, and an ssh pane's first probe waited REMOTE_QUIET_PERIOD (2 s, meant to
    spare fleets of quiet runs a process each): every interrupted ssh run held its pane
    ~2 s after its shell was back (a cancelled fleet_run on 3 servers: 2.2 s)."""
    import time

    from sane.fleet.panes import ensure_session, open_server_pane
    from sane.ops.run.options import INTERRUPT_QUIET
    from sane.ops.run.quiet import REMOTE_QUIET_PERIOD, QuietWatch

    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    state = open_server_pane(sane_ctx, servers[0])
    client = sane_ctx.client(state.session_id)
    interrupted = QuietWatch.after_interrupt(client, state.pane_id)
    plain = QuietWatch(client, state.pane_id, INTERRUPT_QUIET, remote=True)
    assert interrupted.wait_time(time.monotonic()) <= INTERRUPT_QUIET
    assert plain.wait_time(time.monotonic()) > REMOTE_QUIET_PERIOD - 0.5  # fleets: kept


def test_a_sigterm_after_a_cancelled_mcp_fleet_run_waits_for_its_interrupts(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any
) -> None:
    """The TypeScript SDK's way of leaving after its request timeout cancelled a
    fleet_run: stdin closed, then SIGTERM (here at once, harsher than its 2 s). sane
    interrupts every server's run first, then dies of the SIGTERM, and the next fleet
    run is exact on every server. Before, the SIGTERM killed sane mid-wind-down:
    `sleep 600` held all three panes (pane_busy)."""
    names = [s.name for s in register(sane_ctx.home, ssh_fleet)]
    proc = raw_mcp(cli_env)
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None and stdout is not None
    watchdog = threading.Timer(180, proc.kill)  # a hung server ends the reads below
    watchdog.start()

    def send(message: dict[str, Any]) -> None:
        stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        stdin.flush()

    def answer(request_id: int) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(stdout.readline())
            if message.get("id") == request_id:
                return message

    def call(request_id: int, name: str, **arguments: Any) -> None:
        send(
            {
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        )

    try:
        send(RAW_INITIALIZE)
        answer(1)
        send({"method": "notifications/initialized"})
        call(2, "fleet_run", command="true", servers=names)
        assert answer(2)["result"]["structuredContent"]["status"] == "completed"
        call(3, "fleet_run", command="sleep 600", servers=names, timeout=600)
        deadline = time.monotonic() + 60
        for request_id in range(10, 10**6):
            call(request_id, "list_panes", all=True)
            panes = answer(request_id)["result"]["structuredContent"]["panes"]
            if len([p for p in panes if p["busy"]]) == len(names):
                break
            assert time.monotonic() < deadline, "the runs never started"
            time.sleep(0.05)  # polling a condition, with a deadline
        send({"method": "notifications/cancelled", "params": {"requestId": 3}})
        stdin.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == -signal.SIGTERM
    finally:
        watchdog.cancel()
        _reap(proc)
    status, doc, _ = cli(["sane.cli.main", "fleet", "run", "--timeout", "60", "echo back"], cli_env)
    assert [(r["server"], r["status"], r["output"]) for r in doc["results"]] == [
        (name, "completed", "back\n") for name in names
    ], doc
    assert status == 0


def test_taking_over_one_servers_run_of_an_mcp_fleet_run_leaves_the_others_going(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    """A second call takes over s1's run of a fleet_run still going (run_wait of the id
    list_panes shows): only that run is handed over (the take-over gets `running`, so
    does s1 in the fleet_run's answer); the other servers' runs go on and end exactly
    (they wait for a gate the test opens after the take-over). Before, the take-over set
    the whole call's stop: every server came back `running`."""
    import anyio

    from .test_mcp import with_session

    servers = register(sane_ctx.home, ssh_fleet)
    names = [s.name for s in servers]
    gate = tmp_path / "gate"  # the servers are sshd on this machine: one file system
    command = (
        f"if [ $FLEET_HOST = {names[0]} ]; then sleep 600; "
        f"else while [ ! -e {gate} ]; do sleep 0.1; done; echo done $FLEET_HOST; fi"
    )
    got: dict[str, Any] = {}

    async def body(session: Any, call: Any) -> None:
        warm = await call("fleet_run", command="true", servers=names)
        assert warm["status"] == "completed", warm
        panes = {p["sane_server"]: p["pane_id"] for p in (await call("list_panes"))["panes"]}

        async def fleet() -> None:
            got["fleet"] = await call("fleet_run", command=command, servers=names, timeout=300)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fleet)
            with anyio.fail_after(120):  # a deadline for a loaded machine
                while True:
                    listing = {p["pane_id"]: p for p in (await call("list_panes"))["panes"]}
                    if all(listing[panes[name]]["busy"] for name in names):
                        break
                    await anyio.sleep(0.05)  # polling a condition, with a deadline
            taken = listing[panes[names[0]]]["run_id"]
            got["taken"] = await call("run_wait", run_id=taken, timeout=1)
            gate.touch()
        assert (got["taken"]["run_id"], got["taken"]["status"]) == (taken, "running")
        results = got["fleet"]["results"]
        assert [(r["server"], r["status"]) for r in results] == [
            (names[0], "running"),
            *((name, "completed") for name in names[1:]),
        ], results
        assert [r["output"] for r in results[1:]] == [f"done {name}\n" for name in names[1:]]
        stopped = await call("run_interrupt", run_id=taken)
        assert stopped["status"] == "interrupted", stopped

    with_session(cli_env, body)
