"""A warm fleet run is followed by one thread (sane.fleet.loop, issue 17: linear cost),
and every run that needs more than its end marker still ends exactly. Real sshd on
loopback, a real tmux server per test."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.poll import poll
from sane.protocol import scanner as sc
from sane.testing.fleet import register
from sane.tmux.control import ControlClient


def test_warm_runs_on_every_server_are_followed_by_the_one_calling_thread(
    sane_ctx: Context, ssh_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every byte of every server's run is read by the thread that called fleet_run,
    and no per-run follow loop runs. Before, each server's run had a worker thread of
    its own, blocked in its own follow loop (three servers: three threads feeding)."""
    from sane.ops.run import command, follow

    servers = register(sane_ctx.home, ssh_fleet)
    fleet_run(sane_ctx, servers, "true", max_parallel=3)  # connected: count runs only
    feeders: set[int] = set()
    feed = sc.RunScanner.feed
    loops: list[str] = []
    follow_run = follow.follow_run

    def spy_feed(self: sc.RunScanner, data: bytes) -> Any:
        if data:
            feeders.add(threading.get_ident())
        return feed(self, data)

    def spy_follow(*args: Any, **kwargs: Any) -> Any:
        loops.append(args[2])
        return follow_run(*args, **kwargs)

    monkeypatch.setattr(sc.RunScanner, "feed", spy_feed)
    monkeypatch.setattr(command, "follow_run", spy_follow)
    result = fleet_run(
        sane_ctx, servers, "sleep 0.5; echo $FLEET_HOST; sh -c 'exit 3'", max_parallel=3
    )
    assert [(r["status"], r["exit_code"], r["output"]) for r in result["results"]] == [
        ("completed", 3, f"{s.name}\n") for s in servers
    ], result
    assert feeders == {threading.get_ident()}
    assert loops == []


def test_runs_the_loop_hands_to_threads_end_exactly(sane_ctx: Context, ssh_fleet: Any) -> None:
    """One warm fleet run where each server's run ends another way: by its end marker
    (in the loop), waiting for input (the quiet probe, in a thread), past its deadline
    (handed over, in a thread); then each is followed to its end by a plain run."""
    servers = register(sane_ctx.home, ssh_fleet)
    assert len(servers) == 3
    fleet_run(sane_ctx, servers, "true", max_parallel=3)  # every pane warm
    names = [s.name for s in servers]
    script = (
        f"case $FLEET_HOST in {names[0]}) echo done;; "
        f"{names[1]}) printf 'Name? '; read answer; echo got $answer;; "
        f"*) echo slow; sleep 6; echo late;; esac"
    )
    result = fleet_run(sane_ctx, servers, script, max_parallel=3, timeout=4)
    by_name = {r["server"]: r for r in result["results"]}
    first, second, third = (by_name[n] for n in names)
    assert (first["status"], first["exit_code"], first["output"]) == ("completed", 0, "done\n")
    assert second["status"] == "waiting_input", second
    assert second["output"] == "Name? ", second
    assert third["status"] == "running", third
    assert third["output"] == "slow\n", third
    assert result["counts"]["completed"] == 1
    # The two runs left are the panes' own: the next run on them is pane_busy.
    again = fleet_run(sane_ctx, servers, "echo again", max_parallel=3, timeout=10)
    statuses = {r["server"]: r["status"] for r in again["results"]}
    assert statuses[names[0]] == "completed"
    assert {statuses[names[1]], statuses[names[2]]} == {"error"}
    codes = {r["error"]["code"] for r in again["results"] if r["server"] != names[0]}
    assert codes == {"pane_busy"}, again


class _Counted:
    """A control client's real stdin pipe, each flush's bytes noted in ``writes``."""

    def __init__(self, pipe: Any, writes: list[bytes]) -> None:
        self.pipe, self.writes, self.buffered = pipe, writes, b""

    def write(self, data: bytes) -> int:
        self.buffered += data
        return int(self.pipe.write(data))

    def flush(self) -> None:
        self.writes.append(self.buffered)
        self.buffered = b""
        self.pipe.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)


@contextlib.contextmanager
def counted_writes(client: ControlClient) -> Iterator[list[bytes]]:
    """The writes to ``client``'s tmux while the block runs, one entry per flush (the
    bytes still go to tmux, which runs them)."""
    writes: list[bytes] = []
    real = client._proc.stdin
    client._proc.stdin = _Counted(real, writes)  # type: ignore[assignment]
    try:
        yield writes
    finally:
        client._proc.stdin = real


def test_a_warm_fleet_run_types_every_server_in_one_write_to_tmux(
    sane_ctx: Context, make_fleet: Any
) -> None:
    """The loop's claim-and-type lines of a wave go to tmux in one write (and the
    release lines of the runs ended at one wake-up in one write each time): tmux pays
    a turn of its event loop per write it reads, a poll of every pane's descriptor and
    a pass over every pane, O(N) per line at N panes (issue 17). Before, each server's
    line was its own write: 12 servers, 12 writes with a claim. Counted at the real
    pipe to the control client (the bytes still go to tmux, which runs them)."""
    servers = register(sane_ctx.home, make_fleet(12))
    fleet_run(sane_ctx, servers, "true", max_parallel=12)  # every pane warm
    client = sane_ctx.hub.any_client()
    assert client is not None

    with counted_writes(client) as writes:
        result = fleet_run(sane_ctx, servers, "echo $FLEET_HOST", max_parallel=12)
    assert [(r["status"], r["exit_code"], r["output"]) for r in result["results"]] == [
        ("completed", 0, f"{s.name}\n") for s in servers
    ], result
    claims = [w.count(b"set-option -p -o -t %") for w in writes]
    assert [c for c in claims if c] == [12], claims
    releases = [w.count(b"set-option -p -u -t %") for w in writes]
    assert sum(releases) == 12, releases


def test_releases_of_runs_ending_apart_go_to_tmux_together_and_before_the_call_returns(
    sane_ctx: Context, make_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release lines of runs the loop ends within RELEASE_GATHER of each other go
    to tmux in one write (each line tmux reads alone costs it a turn of its event loop,
    O(panes): ~1-1.5 ms of its CPU at 1,000 panes), and all of them are written before
    fleet_run returns. The gather stretched to 30 s so that three runs ending ~0.4 s
    apart (separate wake-ups of the loop) fall in it; before, each wake-up's releases
    were written at once: three writes with a release (seen: [1, 1, 1]). Then the
    panes' flags are seen free through another tmux client, long before the 30 s: the
    last run's end wrote them, not the gather's timer."""
    from sane.fleet import loop
    from sane.fleet.panes import server_panes
    from sane.tmux import panes

    servers = register(sane_ctx.home, make_fleet(3))
    fleet_run(sane_ctx, servers, "true", max_parallel=3)  # every pane warm
    listed = server_panes(sane_ctx)
    pane_ids = [listed[s.name].pane_id for s in servers]
    client = sane_ctx.hub.any_client()
    assert client is not None

    # raising=False: the code before the gather has no such value (the test fails there
    # on its count of writes, not here). No liveness listing meanwhile: any write to
    # the client (that listing every 0.25 s of quiet) takes the held lines along.
    monkeypatch.setattr(loop, "RELEASE_GATHER", 30.0, raising=False)
    monkeypatch.setattr(loop, "LIVENESS_INTERVAL", 30.0)
    stagger = "; ".join(
        f"[ $FLEET_HOST != {s.name} ] || sleep {0.4 * i}" for i, s in enumerate(servers)
    )
    with counted_writes(client) as writes:
        result = fleet_run(sane_ctx, servers, f"{stagger}; echo $FLEET_HOST", max_parallel=3)
    assert [(r["status"], r["exit_code"], r["output"]) for r in result["results"]] == [
        ("completed", 0, f"{s.name}\n") for s in servers
    ], result
    releases = [w.count(b"set-option -p -u -t %") for w in writes]
    assert [n for n in releases if n] == [3], releases

    def flags() -> list[str]:
        return [
            sane_ctx.server.run("show-options", "-p", "-q", "-v", "-t", pane, panes.OPT_RUN).strip()
            for pane in pane_ids
        ]

    assert poll(lambda: flags() == ["", "", ""], 10.0), flags()


# Where the Ctrl-C lands among the wave's six lines: before the first is queued
# (nothing to write), among them, before the last (five queued).
@pytest.mark.parametrize("at", [1, 4, 6], ids=["first", "middle", "last"])
def test_a_ctrl_c_while_a_wave_is_written_leaves_no_line_behind(
    sane_ctx: Context, make_fleet: Any, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """A Ctrl-C (KeyboardInterrupt) landing while the loop queues a wave's lines for its
    one write: the lines queued go out and their runs are followed like any typed run
    (each ends, its flag released); the others are never typed. Before, the queued
    lines stayed held, their runs taken for never typed, and went to tmux with the next
    write on that client (here the next fleet run's): claimed panes nobody followed,
    which that run found busy."""
    servers = register(sane_ctx.home, make_fleet(6))
    fleet_run(sane_ctx, servers, "true", max_parallel=6)  # every pane warm
    client = sane_ctx.hub.any_client()
    assert client is not None
    real_send = client.send
    held = 0

    def send(*lines: str, **kwargs: Any) -> Any:
        nonlocal held
        if kwargs.get("hold"):
            held += 1
            if held == at:  # at - 1 lines queued: the signal lands before the next
                raise KeyboardInterrupt
        return real_send(*lines, **kwargs)

    monkeypatch.setattr(client, "send", send)
    with pytest.raises(KeyboardInterrupt):
        fleet_run(sane_ctx, servers, "echo first", max_parallel=6)
    monkeypatch.setattr(client, "send", real_send)

    def every_flag_released() -> bool:
        flags = sane_ctx.tmux(["list-panes", "-a", "-F", "#{@sane_run}"])
        return not any(flag.strip() for flag in flags)

    # The runs typed before the signal end on their own (their threads follow them).
    assert poll(every_flag_released, 30), "a pane stayed claimed after its run"
    result = fleet_run(sane_ctx, servers, "echo $FLEET_HOST", max_parallel=6, timeout=30)
    assert [(r["status"], r["exit_code"], r["output"]) for r in result["results"]] == [
        ("completed", 0, f"{s.name}\n") for s in servers
    ], result


def test_a_warm_run_types_its_keys_in_one_tmux_command(
    sane_ctx: Context, make_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each tmux command of a warm run costs tmux a command of its own (a reply block,
    the hooks looked up after it; more the more panes it holds) and sane's reader two
    lines, per server (issue 17): the hold key, C-e C-u, the line and its Enter go as
    the characters they send in one ``send-keys -l``, so a claim-and-type is three
    commands (claim, ``copy-mode -q``, keys), and the shell still gets the same keys
    in the same order (the outputs exact; test_has_input: a person's text still held).
    Before: the hold key (``-H``), C-e C-u, and the line with Enter were a
    ``send-keys`` each, five commands per server (four after 39bd47e)."""
    from sane.tmux.control import ControlClient

    servers = register(sane_ctx.home, make_fleet(3))
    fleet_run(sane_ctx, servers, "true", max_parallel=3)  # every pane warm
    lines: list[tuple[str, ...]] = []
    send = ControlClient.send

    def spy(self: ControlClient, *commands: str, **kwargs: Any) -> Any:
        lines.append(commands)
        return send(self, *commands, **kwargs)

    monkeypatch.setattr(ControlClient, "send", spy)
    result = fleet_run(sane_ctx, servers, "echo $FLEET_HOST", max_parallel=3)
    assert [(r["status"], r["exit_code"], r["output"]) for r in result["results"]] == [
        ("completed", 0, f"{s.name}\n") for s in servers
    ], result
    claims = [line for line in lines if line[0].startswith("set-option -p -o -t %")]
    assert len(claims) == 3, lines
    for claim in claims:
        pane = claim[0].split()[4]
        assert len(claim) == 3, claim
        assert claim[1] == f"copy-mode -q -t {pane}", claim
        # The hold key (ESC [7770~), C-e, C-u, the line, Enter: one argument.
        keys = f"send-keys -t {pane} -l -- ''\"\\033\"'[7770~'\"\\005\"''\"\\025\"' "
        assert claim[2].startswith(keys), claim
        assert claim[2].endswith("'\"\\015\"''"), claim
