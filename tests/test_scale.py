"""Big fleets from one orchestrator (issue 17): connecting is never serialised across
servers, --max-parallel bounds the handshakes, and every server ends alone with its
own result. Real sshd on loopback, a real tmux server per test."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sane import errors
from sane.fleet.panes import connect_many, ensure_session
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.ops.has_input import after_takeover
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux import structure
from sane.tmux.panes import OPT_SHELL_PID

from .conftest import run
from .test_fleet import handshakes, peak_concurrency, peak_overlap


def test_servers_connect_while_another_process_holds_the_creation_lock(
    sane_ctx: Context, ssh_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a server's pane takes that server's lock only: a process busy creating
    sessions (or stuck holding that lock) does not hold any server's connection back,
    and neither does another server's. Before, every pane was made under the one
    creation lock, with a tmux process per step: connections queued behind each other
    and a server's deadline ran out while it waited."""
    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    monkeypatch.setattr(structure, "CREATION_LOCK_TIMEOUT", 1.0)
    fd = os.open(structure.creation_lock_path(sane_ctx.server), os.O_RDWR | os.O_CREAT, 0o600)
    other = os.open(structure.pane_lock_path(sane_ctx.server, "s2"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: conflicts as across processes
        fcntl.flock(other, fcntl.LOCK_EX)
        reports = {r["server"]: r for r in connect_many(sane_ctx, servers, max_parallel=3)}
    finally:
        os.close(fd)
        os.close(other)
    assert reports["s1"]["ok"] and reports["s3"]["ok"], reports
    assert reports["s2"]["error"]["code"] == "state_locked"
    assert "opening the pane of s2" in reports["s2"]["error"]["message"]


@pytest.mark.slow
def test_200_servers_connect_with_bounded_handshakes_and_run_exactly(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    """200 servers cold: all connect, never more than --max-parallel at once, by
    sane's reports and by the ssh handshakes as the sshd processes' own start times
    show them (the connection's process forked at accept, the login shell started
    after it); and a run on all 200 gives each its own answer."""
    fleet = make_fleet(200)
    servers = register(sane_ctx.home, fleet)
    reports = connect_many(sane_ctx, servers, max_parallel=25)
    failed = [r for r in reports if not r["ok"]]
    assert failed == [], failed[:3]
    assert peak_concurrency(reports) <= 25
    assert 1 < peak_overlap(handshakes(sane_ctx, fleet, reports)) <= 25
    result = fleet_run(sane_ctx, servers, "echo $FLEET_HOST", max_parallel=200, timeout=60)
    assert result["counts"]["ok"] == 200, [r for r in result["results"] if not r["ok"]][:3]
    assert [r["output"] for r in result["results"]] == [f"{s.name}\n" for s in servers]


def test_a_cold_connect_costs_tmux_the_same_per_server_at_any_size(
    sane_ctx: Context, ssh_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a cold connect asks of tmux, from the command lines sane's control client
    sends (real tmux answers them): the session's panes are listed whole a fixed
    number of times, not once per server (that grew the connect with N²: at 1,000
    servers each listing names 1,000 panes); the runner's ~2.2 KB goes in as one
    paste, not as keys (tmux handles keys one by one and the remote line editor
    redraws after each: 80-190 ms of CPU per pane); no process holds a gate; a
    server's pane is made and marked in one command line; whether it printed yet costs
    no look at its screen; and the takeover ends in one line."""
    import time

    from sane.ops.run.liveness import LIVENESS_INTERVAL
    from sane.tmux.control import ControlClient

    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    sent: list[str] = []
    lines: list[tuple[str, ...]] = []
    send = ControlClient.send

    def spy(self: ControlClient, *commands: str, **marks: Any) -> Any:
        sent.extend(commands)
        lines.append(commands)
        return send(self, *commands, **marks)

    monkeypatch.setattr(ControlClient, "send", spy)
    started = time.monotonic()
    reports = connect_many(sane_ctx, servers, max_parallel=3)
    sent = [c.replace("'", "") for c in sent]  # words as tmux reads them
    assert [r["ok"] for r in reports] == [True] * 3, reports
    assert [r["shell"] for r in reports] == ["posix"] * 3
    whole = [c for c in sent if c.startswith("list-panes -s") and " -f " not in c]
    assert len(whole) <= 2, whole
    # The liveness listing every waiter shares (is my pane dead?) is per interval of
    # time, not per server.
    alive = [c for c in sent if c.startswith("list-panes -a")]
    assert len(alive) <= (time.monotonic() - started) / LIVENESS_INTERVAL + 1, alive
    # Nor filtered per server (a filter runs over every pane of the session): only
    # ensure_session's one look for the orchestrator pane.
    filtered = [c for c in sent if c.startswith("list-panes") and " -f " in c]
    assert len(filtered) <= 1, filtered
    keys = [c for c in sent if c.startswith("send-keys")]
    assert max(len(c) for c in keys) < 1000, max(keys, key=len)[:200]
    assert not [c for c in sent if "wait-for" in c]
    assert len([c for c in sent if c.startswith("new-window")]) == 3
    # A new pane's first output is counted by the control client that was attached
    # when it was made: no look at its screen (one round trip per server before).
    assert not [c for c in sent if c.startswith("capture-pane")]
    # The yank that gives back a person's text after the takeover goes with the
    # options that mark the runner installed: one round trip, not two.
    for report in reports:
        yank = after_takeover(report["pane"])
        with_yank = [line for line in lines if yank in line]
        assert len(with_yank) == 1 and any(OPT_SHELL_PID in c for c in with_yank[0]), with_yank
    result = fleet_run(sane_ctx, servers, "echo $FLEET_HOST", max_parallel=3)
    assert [r["output"] for r in result["results"]] == [f"{s.name}\n" for s in servers]


def test_a_cold_server_changes_each_tmux_option_once(
    sane_ctx: Context, ssh_fleet: Any, tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmux 3.3a recomputes every window's size at any option change, so each
    ``set-option`` of a cold connect costs tmux O(windows): a fleet's connect makes a
    window per server, O(N) each, O(N²) in all (measured: 25 us of tmux CPU for one with
    10 windows, 680 us with 1,000). None is sent twice for a server's pane, and none
    that another command does anyway: ``remain-on-exit`` only with the marks that make
    the pane sane's (before: again at the takeover), the window's size made manual by
    ``resize-window`` (before: also a ``set-option -w window-size manual``). What they
    did still holds, as tmux reports it; and a pane sane did not make (a person's) still
    gets ``remain-on-exit`` at its takeover."""
    from sane.tmux.control import ControlClient

    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    sent: list[str] = []
    send = ControlClient.send

    def spy(self: ControlClient, *commands: str, **marks: Any) -> Any:
        sent.extend(commands)
        return send(self, *commands, **marks)

    def option(command: str) -> str:  # the option a set-option line changes
        words = iter(shlex.split(command)[1:])
        return next(w for w in words if not (w.startswith("-") and (w != "-t" or next(words))))

    monkeypatch.setattr(ControlClient, "send", spy)
    reports = connect_many(sane_ctx, servers, max_parallel=3)
    assert [r["ok"] for r in reports] == [True] * 3, reports
    sets = [c for c in sent if shlex.split(c)[0] == "set-option"]
    assert not [c for c in sets if option(c) == "window-size"], sets
    # Each pane option once per server (the three panes' own), none twice for one.
    changed = Counter(option(c) for c in sets if "-p" in shlex.split(c))
    assert set(changed.values()) == {3}, changed
    assert changed["remain-on-exit"] == 3
    for report in reports:
        pane = report["pane"]
        assert tmux_server.run("show-options", "-pv", "-t", pane, "remain-on-exit") == "on\n"
    # The lone window a pane is made in (the orchestrator's here, made the same way).
    local = structure.ensure_local_pane(sane_ctx.server, sane_ctx.session_name, "w", "local")
    got = tmux_server.run("display-message", "-p", "-t", local, "#{window_width}x#{window_height}")
    assert got == "200x50\n"
    assert tmux_server.run("show-options", "-wv", "-t", local, "window-size") == "manual\n"
    assert tmux_server.run("show-options", "-pv", "-t", local, "remain-on-exit") == "on\n"
    person = tmux_server.new_pane("bash")
    assert run(sane_ctx, person, "echo mine")["output"] == "mine\n"
    assert tmux_server.run("show-options", "-pv", "-t", person, "remain-on-exit") == "on\n"


def test_a_pane_another_process_made_since_the_listing_is_used_not_doubled(
    sane_ctx: Context, sane_home: Any, ssh_fleet: Any
) -> None:
    """The check under a server's pane lock asks tmux about panes by id only: the one
    the caller listed and the one the lock's record names. A pane another process made
    after this one listed the session is found through the record, so a server never
    gets two panes."""
    from sane.fleet.panes import open_server_pane, server_panes

    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    known = server_panes(sane_ctx)  # this process's listing: no pane for s1 yet
    assert "s1" not in known
    with Context(sane_ctx.server, home=sane_home) as other:  # another process's hub
        made = open_server_pane(other, servers[0]).pane_id
    state = open_server_pane(sane_ctx, servers[0], known=known)
    assert state.pane_id == made and state.runner_installed
    ssh = [
        line
        for line in sane_ctx.tmux(
            ["list-panes", "-s", "-t", f"={sane_ctx.session_name}", "-F", "#{@sane_server}"]
        )
        if line == "s1"
    ]
    assert ssh == ["s1"]


def test_a_record_naming_a_pane_that_is_not_the_servers_is_not_trusted(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """A pane lock's record can outlive its pane and its tmux server (pane ids start
    again at %0): a record naming another kind of pane, or a pane of s1 in another
    session, is passed over and s1 gets a pane of its own in this session."""
    from sane.fleet.panes import open_server_pane, server_panes

    servers = register(sane_ctx.home, ssh_fleet)
    orchestrator = ensure_session(sane_ctx)
    structure.write_pane_record(sane_ctx.server, "s1", sane_ctx.session_name, orchestrator)
    first = open_server_pane(sane_ctx, servers[0], known={})
    assert first.pane_id != orchestrator and first.server == "s1" and first.runner_installed
    # s2's pane, taken to another session, is what the record names for this one.
    elsewhere = sane_ctx.server.run(
        "new-session", "-d", "-s", "elsewhere", "-P", "-F", "#{pane_id}"
    ).strip()
    for option, value in (("@sane_role", "ssh"), ("@sane_server", "s2")):
        sane_ctx.server.run("set-option", "-p", "-t", elsewhere, option, value)
    structure.write_pane_record(sane_ctx.server, "s2", sane_ctx.session_name, elsewhere)
    second = open_server_pane(sane_ctx, servers[1], known={})
    assert second.pane_id != elsewhere and second.runner_installed
    assert {n: s.pane_id for n, s in server_panes(sane_ctx).items()} == {
        "s1": first.pane_id,
        "s2": second.pane_id,
    }


def _tmux_pid(ctx: Context) -> int:
    return int(ctx.server.run("display-message", "-p", "#{pid}").strip())


def _connect_within(ctx: Context, servers: list[Any], limit: float) -> list[dict[str, Any]]:
    """connect_many in a thread: a hang is this test's failure, not the suite's."""
    import threading

    out: list[list[dict[str, Any]]] = []
    worker = threading.Thread(
        target=lambda: out.append(connect_many(ctx, servers, max_parallel=3)), daemon=True
    )
    worker.start()
    worker.join(limit)
    assert out, f"connect_many did not return within {limit:g}s"
    return out[0]


def test_tmux_out_of_descriptors_is_resource_limit_naming_nofile(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """A tmux server whose open-files limit leaves no room for another pane: every
    server fails at once with resource_limit naming tmux's nofile and its value. Before,
    ``sane up`` hung with no output (tmux stopped answering its clients)."""
    import subprocess

    from sane.fleet import limits

    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    pid = _tmux_pid(sane_ctx)
    used = limits.open_files(pid)
    assert used is not None
    cap = used + limits.TMUX_RESERVE + 1
    before = limits.open_files_limit(pid)
    # The soft limit only: the hard one stays, so it can be put back.
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={cap}:"], check=True)
    try:
        reports = _connect_within(sane_ctx, servers, 30)
    finally:  # room again for the fixture's clean-up to be answered (not waited out)
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={before}:"], check=True)
    assert [r["error"]["code"] for r in reports] == ["resource_limit"] * 3, reports
    details = reports[0]["error"]["details"]
    assert (details["limit"], details["value"]) == ("nofile", cap)
    assert details["process"] == f"tmux (pid {pid})"


def test_tmux_failing_a_window_for_descriptors_names_its_limit_and_value(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """tmux's own "fork failed: Too many open files" (its last descriptors taken
    between sane's check and the window, as by another sane or panes opening at
    once): resource_limit naming the tmux server's nofile, its value and the process.
    Before, ``value`` was None and ``process`` a bare "tmux" (seen for 7 of 100
    servers of ``sane up --max-parallel 50`` with tmux at nofile 100)."""
    import subprocess

    from sane.fleet import limits
    from sane.fleet.panes import _new_pane

    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    # Commands go over the control client, as in a fleet's connect: a tmux process
    # would need a descriptor of the tmux server to be accepted, and wait for it.
    sane_ctx.attach_first(f"={sane_ctx.session_name}")
    pid = _tmux_pid(sane_ctx)
    assert limits._tmux_pid(sane_ctx) == pid
    used = limits.open_files(pid)
    assert used is not None
    cap = used + 1  # below what a window needs (its pty's two ends): tmux refuses it
    before = limits.open_files_limit(pid)
    # The soft limit only: the hard one stays, so it can be put back.
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={cap}:"], check=True)
    try:
        with pytest.raises(errors.ResourceLimit) as caught:
            _new_pane(sane_ctx, servers[0], accept_new=False)
    finally:  # room again for the fixture's clean-up (a tmux process to be accepted)
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={before}:"], check=True)
    details = caught.value.to_dict()["details"]
    assert (details["limit"], details["value"]) == ("nofile", cap), caught.value.to_dict()
    assert details["process"] == f"tmux (pid {pid})"
    assert "Too many open files" in caught.value.message, caught.value.message


def test_a_tmux_server_out_of_descriptors_is_still_killed_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``kill_for_good`` (every test's tmux teardown, ``sane demo``'s) ends a server
    that cannot accept a client (no descriptor left): found by its command line when
    it does not answer. Before, such a server lived on after its test, spinning on
    accept at ~10% of a core: 23 of them after a helper's loop of the nofile tests
    (session 13), one per CI run."""
    import signal
    import subprocess
    import time

    from sane.fleet import limits
    from sane.poll import poll
    from sane.tmux import command
    from sane.tmux.command import TmuxServer

    server = TmuxServer(socket_name=f"sane-test-nofds-{os.getpid()}", config_file="/dev/null")
    server.run("new-session", "-d", "-s", "base", "sleep 600")
    pid = int(server.run("display-message", "-p", "#{pid}").strip())
    try:
        used = limits.open_files(pid)
        assert used is not None
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={used}:{used}"], check=True)
        monkeypatch.setattr(command, "COMMAND_TIMEOUT", 1.0)
        started = time.monotonic()
        structure.kill_for_good(server)
        assert poll(lambda: not os.path.exists(f"/proc/{pid}"), 10), "the server lives on"
        assert time.monotonic() - started < 30
        assert not os.path.exists(server.socket_file())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_stopped_tmux_server_is_tmux_failed_not_a_hang(
    sane_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tmux process sane starts has a deadline: a tmux server that cannot answer
    (stopped here; out of descriptors in the field) is tmux_failed, never a hang."""
    import signal
    import time

    from sane import errors
    from sane.tmux import command

    ensure_session(sane_ctx)
    pid = _tmux_pid(sane_ctx)
    monkeypatch.setattr(command, "COMMAND_TIMEOUT", 1.0)
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(errors.TmuxError) as caught:
            sane_ctx.server.run("list-sessions")
        assert time.monotonic() - started < 5
    finally:
        os.kill(pid, signal.SIGCONT)
    assert caught.value.code == "tmux_failed"
    assert "did not answer within 1s" in caught.value.message


def _at_64_open_files(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` (it prints a JSON object) in a child Python whose open-files
    limit is 64, soft and hard: the limit is real, so are the calls it makes."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        ["prlimit", "--nofile=64:64", sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout))


def _assert_nofile_64(out: dict[str, Any], names: tuple[str, ...], key: str, value: str) -> None:
    """Each of ``names`` failed with resource_limit naming nofile, 64, and ``key``."""
    for name in names:
        error = out[name]
        assert error is not None and error["code"] == "resource_limit", (name, error)
        details = error["details"]
        assert (details["limit"], details["value"], details[key]) == ("nofile", 64, value)


_OUT_OF_FILES = """
import json, os, sys
from sane import errors
from sane.fleet.registry import Registry
from sane.fleet.ssh import run_remote, upload
from pathlib import Path
server = Registry(Path(sys.argv[1])).get("s1")
run_remote(server, "true")  # its control directory and config file made, as in use
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
os.close(held.pop())  # one descriptor free: starting ssh needs its pipes
out = {}
for name, call in (
    ("run_remote", lambda: run_remote(server, "true")),
    ("upload", lambda: upload(server, "/tmp/sane-emfile-test", b"x")),
):
    try:
        call()
        out[name] = None
    except errors.SaneError as exc:
        out[name] = exc.to_dict()
for fd in held:
    os.close(fd)
out["after"] = run_remote(server, "echo $FLEET_HOST").stdout.decode()
print(json.dumps(out))
"""


def test_out_of_open_files_starting_ssh_is_resource_limit_for_that_server(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """sane's process out of descriptors when it starts an ssh (its pipes): that
    server's resource_limit naming nofile and its value, from run_remote (fleet put,
    health, deploy) and upload alike; once descriptors are free again the same call
    works. Before, the OSError escaped: internal_error for the whole command. The limit
    is real (prlimit on a child Python), so is the ssh."""
    register(sane_ctx.home, ssh_fleet)
    out = _at_64_open_files(_OUT_OF_FILES, str(sane_ctx.home))
    _assert_nofile_64(out, ("run_remote", "upload"), "server", "s1")
    assert out["after"] == "s1\n"


_OUT_OF_FILES_LOCALLY = """
import json, os, sys
from pathlib import Path
from sane import errors
from sane.state import write_json
from sane.tmux.command import TmuxServer
from sane.tmux.control import ControlClient
server = TmuxServer(socket_name=sys.argv[1], config_file="/dev/null")
ControlClient(server, "base").close()  # as in use: what they import is loaded
write_json(Path(sys.argv[2]) / "state.json", {})
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
out = {}
for name, call in (
    ("control_client", lambda: ControlClient(server, "base")),
    ("state_file", lambda: write_json(Path(sys.argv[2]) / "state.json", {})),
):
    try:
        call()
        out[name] = None
    except errors.SaneError as exc:
        out[name] = exc.to_dict()
for fd in held:
    os.close(fd)
print(json.dumps(out))
"""


def test_out_of_open_files_for_tmuxs_client_or_a_state_file_is_resource_limit(
    tmux_server: Any, tmp_path: Any
) -> None:
    """sane's process out of descriptors when it starts its tmux control client or
    writes a state file (a lock, a run record): resource_limit naming nofile and its
    value, as for an ssh. Before, `sane up --max-parallel 50` on 100 servers under
    `ulimit -n 64` answered `state_invalid` ("cannot open the directory ...: Too many
    open files") for a third of them, and a client that could not start was
    `tmux_not_installed`. The limit is real (prlimit on a child Python), so is tmux."""
    out = _at_64_open_files(_OUT_OF_FILES_LOCALLY, tmux_server.socket_name, str(tmp_path))
    _assert_nofile_64(out, ("control_client", "state_file"), "process", "sane")


def test_a_descriptor_passed_to_sane_past_its_open_files_limit_is_no_obstacle(
    cli_env: dict[str, str], tmp_path: Any
) -> None:
    """A descriptor sane's parent handed down at a number past sane's own soft
    ``nofile`` (a job runner's pipe at 251 under `prlimit --nofile=200`): sane's
    commands work. Before, glibc refused to close it in the tmux client's spawn
    (EBADF) and every command failed with `tmux_not_installed` ("[Errno 9] Bad file
    descriptor"): the issue's fd-exhaustion report was this."""
    import json
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    high = 100
    os.dup2(read_end, high)  # inheritable, as a parent's descriptor is
    try:
        proc = subprocess.run(
            [
                *("prlimit", "--nofile=64:64", sys.executable, "-m", "sane.cli.main"),
                *("run-command", "--json", "echo $((6 * 7))"),
            ],
            env=cli_env,
            pass_fds=(high,),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        for fd in (high, read_end, write_end):
            os.close(fd)
    doc = json.loads(proc.stdout)
    assert doc["ok"], doc
    assert (doc["output"], doc["exit_code"]) == ("42\n", 0), doc


@contextlib.contextmanager
def _tmux_with_ptys(tmux_server: Any, count: int) -> Iterator[Any]:
    """A tmux server (like ``tmux_server``) in its own mount namespace whose devpts
    instance is mounted with ``max=count``, as in a container; skips where no such
    namespace can be made."""
    import shlex
    import subprocess

    from sane.tmux.structure import kill_for_good

    name = f"{tmux_server.socket_name}-pts"
    server = type(tmux_server)(name)
    tmux = shlex.join(
        [*server.server.argv("new-session", "-d", "-s", "base", "-x", "200", "-y", "50")]
    )
    script = (
        f"mount -t devpts -o newinstance,ptmxmode=0666,max={count} devpts /dev/pts && "
        f"mount --bind /dev/pts/ptmx /dev/ptmx && exec {tmux} 'bash --norc --noprofile'"
    )
    started = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if started.returncode != 0:
        pytest.skip(f"no mount namespace with its own devpts here: {started.stderr.strip()}")
    try:
        server.run("set-option", "-g", "default-command", "bash --norc --noprofile")
        yield server
    finally:
        kill_for_good(server.server)


def test_out_of_ptys_is_resource_limit_for_those_servers_only(
    tmux_server: Any, sane_home: Any, ssh_fleet: Any
) -> None:
    """A tmux server whose devpts has room for 4 pseudo-terminals (its own mount
    namespace, a devpts instance mounted with max=4, as in a container): its first
    session and sane's orchestrator take two, s1 and s2 the others, and s3 fails
    alone with resource_limit naming the devpts max and its value. Before, tmux's
    "fork failed: No space left on device" came back with the host's pty/max (4096)
    as the limit, or no hint at all."""
    with _tmux_with_ptys(tmux_server, 4) as server:
        ctx = Context(server.server, home=sane_home)
        try:
            servers = register(sane_home, ssh_fleet)
            reports = {r["server"]: r for r in connect_many(ctx, servers, max_parallel=1)}
        finally:
            ctx.close()
    assert reports["s1"]["ok"] and reports["s2"]["ok"], reports
    error = reports["s3"]["error"]
    assert error["code"] == "resource_limit", error
    details = error["details"]
    assert (details["limit"], details["value"], details["in_use"]) == ("devpts max", 4, 4)


def test_tmux_itself_out_of_ptys_names_its_devpts_max_not_the_hosts(
    tmux_server: Any, sane_home: Any, ssh_fleet: Any
) -> None:
    """The same devpts of 4, full, and a window asked of tmux without sane's check
    first (as when the last pseudo-terminal goes to another program between that
    check and the window): tmux's own "fork failed: No space left on device" is
    resource_limit naming the limit tmux hit, its devpts max of 4 with 4 in use.
    Before, that message named the host's pty/max (4096) and what the host had in
    use, which was not what stopped tmux."""
    from sane.fleet.panes import _new_pane

    with _tmux_with_ptys(tmux_server, 4) as server:
        ctx = Context(server.server, home=sane_home)
        try:
            servers = register(sane_home, ssh_fleet)
            reports = connect_many(ctx, servers[:2], max_parallel=1)
            assert [r["ok"] for r in reports] == [True, True], reports
            with pytest.raises(errors.ResourceLimit) as caught:
                _new_pane(ctx, servers[2], accept_new=False)
        finally:
            ctx.close()
    details = caught.value.to_dict()["details"]
    assert (details["limit"], details["value"], details["in_use"]) == ("devpts max", 4, 4)
    assert "No space left on device" in caught.value.message, caught.value.message


def test_sshd_refusing_beyond_max_startups_is_resource_limit(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    """A server whose sshd drops connections beyond its MaxStartups (here 1, with one
    connection not yet logged in held open): resource_limit naming MaxStartups, with
    ssh's own words; the other server connects."""
    import socket

    fleet = make_fleet(2)
    fleet.configure_sshd("s1", "MaxStartups 1")
    servers = register(sane_ctx.home, fleet)
    s1 = fleet.server("s1")
    holder = socket.create_connection((s1.host, s1.port), timeout=5)
    try:
        assert holder.recv(64).startswith(b"SSH-")  # sshd counts it: not logged in yet
        reports = {r["server"]: r for r in _connect_within(sane_ctx, servers, 60)}
    finally:
        holder.close()
    assert reports["s2"]["ok"], reports["s2"]
    error = reports["s1"]["error"]
    assert error["code"] == "resource_limit", error
    assert error["details"]["limit"] == "MaxStartups"
    assert "kex_exchange_identification" in error["details"]["ssh_output"]


@pytest.mark.slow
def test_ten_of_100_servers_stopped_mid_run_end_alone_with_the_reason(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    """10 of 100 sshd are stopped while the command runs on all 100: those 10 end
    ``lost`` (their connection closed under the run, ssh's words kept) within their
    deadline, the 90 others give their own exact output."""
    import threading
    import time

    fleet = make_fleet(100)
    servers = register(sane_ctx.home, fleet)
    warm = fleet_run(sane_ctx, servers, "true", max_parallel=50, timeout=120)
    assert warm["counts"]["ok"] == 100, [r for r in warm["results"] if not r["ok"]][:3]
    doomed = [f"s{n}" for n in range(5, 100, 10)]
    marks = [fleet.server(name).home / "started" for name in doomed]
    out: list[dict[str, Any]] = []
    command = "touch ~/started; sleep 5; echo $FLEET_HOST"
    worker = threading.Thread(
        target=lambda: out.append(
            fleet_run(sane_ctx, servers, command, max_parallel=100, timeout=40)
        ),
        daemon=True,
    )
    worker.start()
    deadline = time.monotonic() + 30
    while not all(mark.exists() for mark in marks):
        assert time.monotonic() < deadline, "the runs did not start"
        time.sleep(0.05)  # poll interval of a deadline-bounded wait
    for name in doomed:
        fleet.stop(name)
    worker.join(60)
    assert out, "fleet_run did not return"
    by_name = {r["server"]: r for r in out[0]["results"]}
    for name in doomed:
        report = by_name[name]
        assert report["status"] in ("lost", "unreachable") and not report["ok"], report
        assert report["finished_ms"] - report["started_ms"] < 40_000
        if report["status"] == "lost":
            assert report["error"]["code"] == "connection_failed", report
            assert "Connection to 127.0.0.1 closed" in report["error"]["message"], report
    rest = [s.name for s in servers if s.name not in doomed]
    assert [by_name[n]["output"] for n in rest] == [f"{n}\n" for n in rest]
    assert out[0]["counts"]["ok"] == 90


def test_fleet_put_in_one_command_keeps_create_files_checks(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    """fleet put sends the file in one ssh command per server (the content on its
    stdin): the same checks as create-file in a pane, each server's own error."""
    from sane.fleet.run import fleet_put

    ssh_fleet = make_fleet(3)
    servers = register(sane_ctx.home, ssh_fleet)
    (ssh_fleet.server("s2").home / "put-dir").mkdir(exist_ok=True)
    result = fleet_put(sane_ctx, servers, "~/put-dir", b"x", max_parallel=3)
    codes = {r["server"]: r["error"] and r["error"]["code"] for r in result["results"]}
    assert codes["s2"] == "is_directory" and result["status"] == "partial", result
    result = fleet_put(sane_ctx, servers, "/root/no/such/dir/f", b"x", max_parallel=3)
    assert [r["error"]["code"] for r in result["results"]] == ["parent_missing"] * 3
    data = os.urandom(3000)
    result = fleet_put(sane_ctx, servers, "/root/put-f", data, mode=0o600, max_parallel=3)
    assert [(r["action"], r["mode"]) for r in result["results"]] == [("created", "0600")] * 3
    for srv in ssh_fleet.servers:
        assert (srv.home / "put-f").read_bytes() == data
        assert not [
            p for p in srv.home.iterdir() if p.name.startswith(".sane-") and p.name.endswith(".tmp")
        ]


_spawned: list[list[str]] = []
_counting: list[bool] = []


def _count_spawns(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen" and _counting:
        _spawned.append([str(a) for a in (args[1] or [])])


def test_quiet_fleet_runs_are_watched_without_a_process_per_server_per_second(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """A quiet command on ssh panes: the prompt probe (a process on both hosts) comes
    after 2 s of quiet, then ever less often, and never more than 4 at once. Before,
    each quiet server started one at 0.3 s, 0.9 s, then every second: 400 quiet
    servers made `sleep 1` take 4 s. Counted from the processes this one starts."""
    import sys

    servers = register(sane_ctx.home, ssh_fleet)
    fleet_run(sane_ctx, servers, "true", max_parallel=3)  # connected: count runs only
    sys.addaudithook(_count_spawns)
    _spawned.clear()
    _counting.append(True)
    try:
        result = fleet_run(
            sane_ctx, servers, "sleep 3; echo $FLEET_HOST", max_parallel=3, timeout=30
        )
    finally:
        _counting.clear()
    assert [r["output"] for r in result["results"]] == [f"{s.name}\n" for s in servers]
    probes = [argv for argv in _spawned if argv and argv[0] == "ssh"]
    assert len(probes) <= 2 * len(servers), probes


def test_quiet_fleet_runs_check_their_panes_alive_with_one_listing_for_all(
    sane_ctx: Context, ssh_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet run checks every quarter second that its pane did not die silently.
    That was a tmux query about its own pane per run per check (a `sleep 1` on 200
    servers sent tmux 600-800 of them); now one listing of every pane answers all the
    runs followed at once, at most one per check interval, and a pane is asked about
    alone only when that listing does not show it alive. Each run also asked tmux
    whether its pane was an ssh pane (when to probe it) at its first quiet moment:
    the listing the fleet run starts with says so. Counted from the command lines
    sane's control client sends; real tmux answers them."""
    import time

    from sane.ops.run.liveness import LIVENESS_INTERVAL
    from sane.tmux.control import ControlClient

    servers = register(sane_ctx.home, ssh_fleet)
    fleet_run(sane_ctx, servers, "true", max_parallel=3)  # connected: count runs only
    sent: list[str] = []
    send = ControlClient.send

    def spy(self: ControlClient, *commands: str, **marks: Any) -> Any:
        sent.extend(c.replace("'", "") for c in commands)
        return send(self, *commands, **marks)

    monkeypatch.setattr(ControlClient, "send", spy)
    started = time.monotonic()
    result = fleet_run(sane_ctx, servers, "sleep 1.5; echo $FLEET_HOST", max_parallel=3)
    elapsed = time.monotonic() - started
    assert [r["output"] for r in result["results"]] == [f"{s.name}\n" for s in servers]
    # Nor is a server's pane asked whether it is an ssh pane (the fleet's listing says).
    one_pane = [c for c in sent if c.startswith("display-message") and " -t %" in c]
    assert not one_pane, one_pane
    listings = [c for c in sent if c.startswith("list-panes -a")]
    assert 1 <= len(listings) <= elapsed / LIVENESS_INTERVAL + 1, (len(listings), elapsed)


def test_ctrl_c_during_fleet_put_leaves_every_pane_usable(
    cli_env: dict[str, str], make_fleet: Callable[..., Any], sane_home: Any, tmp_path: Any
) -> None:
    """SIGINT to ``sane fleet put`` at several moments, then a run on every server:
    each one completes (fleet put types nothing into the panes: one ssh command per
    server). Before, 11 of 20 servers answered `running` for a `true` never typed,
    one `pane_busy`."""
    import json
    import signal
    import subprocess
    import sys

    fleet = make_fleet(6)
    register(sane_home, fleet)
    source = tmp_path / "payload"
    source.write_bytes(os.urandom(2_000_000))
    base = [sys.executable, "-m", "sane.cli.main"]
    up = subprocess.run(
        [*base, "up", "--all", "--max-parallel", "6"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    for delay in (0.3, 0.8, 1.5):
        put = subprocess.Popen(
            [
                *base,
                "fleet",
                "put",
                "--all",
                "--max-parallel",
                "6",
                str(source),
                f"/root/put-{delay}",
            ],
            env=cli_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            put.wait(delay)
        except subprocess.TimeoutExpired:
            put.send_signal(signal.SIGINT)
        put.wait(60)
        run = subprocess.run(
            [*base, "fleet", "run", "--all", "--timeout", "20", "true"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        doc = json.loads(run.stdout)
        assert doc["status"] == "completed", (delay, doc)
        for srv in fleet.servers:  # nothing half-written is left in place
            assert not [p for p in srv.home.iterdir() if p.name.endswith(".tmp")]


def test_fleet_operations_lift_sanes_soft_open_files_limit(tmp_path: Any) -> None:
    """A fleet operation lifts sane's soft ``nofile`` to the hard limit first: the common
    soft 1024 ended big fleets with out-of-descriptor failures (``internal_error``)."""
    import subprocess
    import sys

    code = (
        "import resource; from pathlib import Path; from sane.fleet.health import check; "
        f"check(Path({str(tmp_path)!r}), []); "
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    proc = subprocess.run(
        ["prlimit", "--nofile=256:4096", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.split() == ["4096", "4096"], proc.stderr


def test_a_run_whose_start_marker_is_late_waits_instead_of_spinning(
    sane_ctx: Context, tmux_server: Any
) -> None:
    """A run quiet past its quiet period before its start marker has arrived (400
    servers under load): the watch asks again a quiet stretch later. Before, its wait
    stayed zero and the run's loop asked tmux about the pane without pause: 34,000
    commands in 40 s starved tmux, and 387 of 400 warm `true` runs failed."""
    import time

    from sane.ops.run.quiet import QuietWatch
    from sane.protocol.scanner import RunScanner

    pane = tmux_server.new_pane("bash")
    client = sane_ctx.client(sane_ctx.pane_state(pane).session_id)
    watch = QuietWatch(client, pane, 0.3)
    watch.due = time.monotonic() - 1  # quiet for a while already
    assert watch.check(RunScanner("n" * 16), time.monotonic() + 30) is None
    assert watch.wait_time(time.monotonic()) > 0.2


def test_servers_slow_to_answer_are_watched_with_one_listing_not_a_query_each(
    sane_ctx: Context, make_fleet: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While servers have not answered yet (handshakes in progress), each one's wait
    checks that its pane did not die through the listing every waiter of the process
    shares (one ``list-panes -a`` per check interval), not by asking tmux about its
    own pane every 0.1 s: 50 servers connecting at once under load sent the one tmux
    process hundreds of queries a second, which every server's next step queued
    behind. Here 6 servers whose sshd is stopped (the TCP connection is accepted by the
    kernel, no banner comes) wait out a 2 s deadline each, all at once; each ends
    ``timeout``. Counted from the command lines sane's control client sends;
    real tmux answers them."""
    import signal
    import time

    from sane.fleet.panes import open_server_pane
    from sane.ops.run.liveness import LIVENESS_INTERVAL
    from sane.parallel import bounded_map
    from sane.tmux.control import ControlClient

    fleet = make_fleet(6)
    servers = register(sane_ctx.home, fleet)
    ensure_session(sane_ctx)
    sent: list[str] = []
    send = ControlClient.send

    def spy(self: ControlClient, *commands: str, **marks: Any) -> Any:
        sent.extend(c.replace("'", "") for c in commands)
        return send(self, *commands, **marks)

    def connect(server: Any) -> str:
        try:
            open_server_pane(sane_ctx, server, timeout=2)
        except errors.SaneError as exc:
            return exc.code
        return "connected"

    listeners = [fleet.server(s.name).pid for s in servers]
    for pid in listeners:
        os.kill(pid, signal.SIGSTOP)
    monkeypatch.setattr(ControlClient, "send", spy)
    try:
        started = time.monotonic()
        codes = bounded_map(connect, servers, len(servers))
        elapsed = time.monotonic() - started
    finally:
        for pid in listeners:
            os.kill(pid, signal.SIGCONT)
    assert codes == ["timeout"] * len(servers), codes
    panes = [p for p in sane_ctx.tmux(["list-panes", "-a", "-F", "#{pane_id}"])]
    asked = {
        pane: len([c for c in sent if c.startswith("display-message") and pane in c.split()])
        for pane in panes
    }
    # Asked alone: when a listing taken before the pane was made does not show it, and
    # once its wait ends (how did it end?); never every 0.1 s (~20 in 2 s each before).
    assert max(asked.values()) <= 4, asked
    listings = [c for c in sent if c.startswith("list-panes -a")]
    assert 1 <= len(listings) <= elapsed / LIVENESS_INTERVAL + 1, (len(listings), elapsed)
