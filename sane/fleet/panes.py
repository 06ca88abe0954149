"""The orchestrator session: one window per server, each holding that server's ssh.

``sane up`` / ``sane connect`` make sure each server has a live pane whose remote
shell has sane's runner installed (the runner's READY marker is the proof the remote
shell is live, so nothing is typed into a half-open connection). Panes are found again
by their ``@sane_role`` / ``@sane_server`` options, so reconnecting is idempotent: a
live pane is reused, a dead one is replaced, a missing one is created.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from sane import errors
from sane.fleet.events import FleetEvents, OnEvent
from sane.fleet.layout import group_windows
from sane.fleet.limits import check_room_for_pane, from_tmux_failure, room_to_connect
from sane.fleet.spec import ServerLike
from sane.fleet.ssh import classify, ssh_argv, stderr_log, timeout_error
from sane.ops.context import Context
from sane.ops.run.ending import EXIT_SETTLE, dead_state
from sane.ops.run.liveness import LIVENESS_INTERVAL, pane_dead
from sane.ops.takeover import install_runner
from sane.parallel import DEFAULT_PARALLEL, bounded_map
from sane.poll import poll
from sane.tmux import panes
from sane.tmux.control import ControlClient
from sane.tmux.structure import (
    ensure_local_pane,
    pane_lock,
    prepare_commands,
    read_pane_record,
    write_pane_record,
)

ROLE_SSH = "ssh"
ROLE_ORCHESTRATOR = "orchestrator"
CONNECT_TIMEOUT = 30.0
# A server that has answered gets at least this long to take sane's runner, even past
# a shorter deadline: it is alive, and a pane left without the runner would cost the
# next run the same again. (The takeover is retyped after 3 s without READY.)
INSTALL_GRACE = 5.0
# Server names that are safe inside a tmux format (a registry name always is).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def ensure_session(ctx: Context) -> str:
    """The orchestrator session exists, with its ``orchestrator`` window; its pane id.

    Asked first without the creation lock (one tmux round trip): a session that is
    there needs nothing created, so connecting never waits for that lock."""
    ctx.attach_first(f"={ctx.session_name}")
    try:
        found = ctx.tmux(
            [
                "list-panes",
                "-s",
                "-t",
                f"={ctx.session_name}",
                "-f",
                "#{==:#{" + panes.OPT_ROLE + "}," + ROLE_ORCHESTRATOR + "}",
                "-F",
                "#{pane_id}",
            ]
        )
    except (errors.SessionNotFound, errors.PaneNotFound, errors.TmuxServerNotRunning):
        found = []
    if found and found[0].startswith("%"):
        return found[0]
    return ensure_local_pane(ctx.server, ctx.session_name, ROLE_ORCHESTRATOR, ROLE_ORCHESTRATOR)


def server_panes(ctx: Context) -> dict[str, panes.PaneState]:
    """Live or dead ssh panes of the orchestrator session, by server name."""
    ctx.attach_first(f"={ctx.session_name}")  # the runs will need that client anyway
    ctx.sweep_if_grown()  # a long-lived process's fleet runs see panes come and go
    try:
        lines = ctx.tmux(
            ["list-panes", "-s", "-t", f"={ctx.session_name}", "-F", panes.STATE_FORMAT]
        )
    except (errors.SessionNotFound, errors.PaneNotFound, errors.TmuxServerNotRunning):
        return {}
    found: dict[str, panes.PaneState] = {}
    for state in panes.parse_states(lines):
        if state.role == ROLE_SSH and state.server is not None:
            found.setdefault(state.server, state)
    return found


def _pane_now(ctx: Context, name: str, listed: panes.PaneState | None) -> panes.PaneState | None:
    """``name``'s pane as tmux has it now, asked under its pane lock: the pane the
    caller listed (``listed``), or the one another process made since, which the
    lock's record names (``read_pane_record``). Each is asked about by its id, so
    the check costs the same at 20 servers as at 1,000 (a filter over the session's
    panes made a fleet's connect N² tmux work); none when neither exists (a cold
    server: no tmux round trip at all)."""
    recorded = read_pane_record(ctx.server, name, ctx.session_name)
    listed_id = listed.pane_id if listed is not None else None
    # Only a pane of this session (a record may outlive its tmux server, and pane ids
    # start again at %0 in the next one): another session's prints an empty line.
    ours = "#{?#{==:#{session_name}," + ctx.session_name + "}," + panes.STATE_FORMAT + ",}"
    for pane_id in dict.fromkeys(p for p in (recorded, listed_id) if p is not None):
        try:
            lines = ctx.tmux(["display-message", "-p", "-t", pane_id, ours])
        except (errors.SessionNotFound, errors.PaneNotFound, errors.TmuxServerNotRunning):
            continue
        for state in panes.parse_states(lines):
            if state.pane_id == pane_id and state.role == ROLE_SSH and state.server == name:
                return state
    return None


def _new_pane(
    ctx: Context, server: ServerLike, accept_new: bool, replacing: bool = False
) -> tuple[str, str, ControlClient | None]:
    """A window running ssh, made and marked in one tmux command list: tmux runs a
    list without handling any pane's exit in between, so the options that keep a
    failed ssh's pane around are set before tmux can see ssh end (no gate process,
    one round trip). The window is found in the list by a name nobody else has, then
    given the server's. ssh's own messages (and its jump hops') go to a file, not the
    pane: why it failed is then exactly ssh's words, never mixed with the pane's
    padding or with what sane typed into it. ``replacing``: the pane replaces one whose
    ssh ended, so the next run there says its shell is new. Returns the pane's id, its
    session's, and this process's control client of that session if it was attached
    before the pane was made (it has then seen every byte the pane printed: whether
    ssh has answered yet needs no round trip to tmux)."""
    before = ctx.hub.clients()
    unique = f"sane-new-{os.urandom(6).hex()}"
    target = f"={ctx.session_name}:={unique}"
    ssh = shlex.join(ssh_argv(server, accept_new, master=True, tty=True))
    commands = [
        [
            "new-window",
            "-d",
            "-t",
            f"={ctx.session_name}:",
            "-n",
            unique,
            "-P",
            "-F",
            "#{pane_id} #{session_id}",
            f"exec {ssh} 2>{shlex.quote(stderr_log(server))}",
        ],
        *prepare_commands(target, ROLE_SSH, server.name),
        # How to reach the same host beside the pane (over its ControlMaster): prompt
        # detection reads the remote /proc through it while a run waits.
        ["set-option", "-p", "-t", target, panes.OPT_SIDE_CHANNEL, shlex.join(ssh_argv(server))],
        *([["set-option", "-p", "-t", target, panes.OPT_SHELL_NEW, "1"]] if replacing else []),
        ["rename-window", "-t", target, server.name],  # last: the target names it
    ]
    try:
        try:
            out = ctx.tmux_batch(commands)
        # The session closed since, or was never made (no tmux server runs yet on this
        # socket: a deploy or fleet run is often the first call): make it, once.
        except (errors.SessionNotFound, errors.TmuxServerNotRunning):
            ensure_session(ctx)
            out = ctx.tmux_batch(commands)
    except errors.TmuxError as exc:
        raise from_tmux_failure(exc, server.name, ctx) from None
    pane_id, _, session_id = out[0].strip().partition(" ")
    return pane_id, session_id, before.get(session_id)


def taken_as_listed(state: panes.PaneState | None) -> TypeGuard[panes.PaneState]:
    """Is this listed pane one :func:`open_server_pane` returns as it is, with no tmux
    round trip (alive, its runner installed)? One definition for it and for a fleet
    run's choice of the panes its loop may type into (``sane.fleet.run``)."""
    return state is not None and not state.dead and state.runner_installed


def open_server_pane(
    ctx: Context,
    server: ServerLike,
    accept_new: bool = False,
    timeout: float = CONNECT_TIMEOUT,
    known: dict[str, panes.PaneState] | None = None,
) -> panes.PaneState:
    """A live, runner-ready pane for ``server``; raises the classified ssh error.

    ``known``: server panes already listed by the caller (one ``list-panes`` for a
    whole fleet), so a warm pane costs nothing more; only a missing or dead pane
    takes this server's pane lock (never a lock shared with other servers: panes for
    many servers are made at once). ``timeout`` counts from when the pane exists.
    """
    current = (known if known is not None else server_panes(ctx)).get(server.name)
    if taken_as_listed(current):
        return current
    seen_by: ControlClient | None = None
    with room_to_connect(server.name):  # sane's descriptors: may wait for the others
        with pane_lock(ctx.server, server.name):
            existing = _pane_now(ctx, server.name, current)
            if taken_as_listed(existing):
                return existing
            if existing is not None and not existing.dead:
                pane_id, session_id = existing.pane_id, existing.session_id
            else:
                if existing is not None:  # dead: its ssh ended; replace it (respawn docs)
                    ctx.server.run("kill-pane", "-t", existing.pane_id)
                check_room_for_pane(ctx, server.name)
                made = _new_pane(ctx, server, accept_new, existing is not None)
                pane_id, session_id, seen_by = made
                write_pane_record(ctx.server, server.name, ctx.session_name, pane_id)
        deadline = time.monotonic() + timeout
        return _make_ready(ctx, server, pane_id, session_id, deadline, timeout, seen_by)


def _make_ready(
    ctx: Context,
    server: ServerLike,
    pane_id: str,
    session_id: str,
    deadline: float,
    timeout: float,
    seen_by: ControlClient | None = None,
) -> panes.PaneState:
    """Install the runner in the pane's remote shell by ``deadline`` (``timeout``
    seconds from when the pane was there). ``seen_by``: the control client that was
    attached to the pane's session when the pane was made (``_new_pane``); whether the
    pane printed anything yet is then its count, not a look at the screen.

    Nothing is typed before the server has answered: output in the pane (on the
    screen already, or arriving), or, for a server that prints nothing at all (no
    banner, no motd, an empty prompt), its ssh connection's master saying it is up.
    A server that has not answered by the deadline (the TCP connection accepted, the
    handshake hung) is ``ConnectTimeout``; ssh may still get through later (its own
    ConnectTimeout is longer), so the pane stays for the next run or ``sane connect``.
    One that has answered gets INSTALL_GRACE to take the runner."""
    client = ctx.client(session_id)
    stream = client.watch(pane_id)
    try:
        ask_master_at = min(time.monotonic() + 5.0, deadline)
        if seen_by is client and client.alive:
            answered = client.printed(pane_id)  # asked after the watch: see printed()
        else:
            answered = _shows_output(ctx, pane_id)
        while not answered:
            if stream.take(max(0.0, min(LIVENESS_INTERVAL, deadline - time.monotonic()))):
                break
            if pane_dead(ctx, pane_id):
                raise _connect_error(ctx, server, pane_id)
            if time.monotonic() >= ask_master_at:
                if _master_up(server):
                    break
                ask_master_at = time.monotonic() + 1.0
            if time.monotonic() >= deadline:
                raise _timeout(server, pane_id, timeout)
        deadline = max(deadline, time.monotonic() + INSTALL_GRACE)
        try:
            return install_runner(ctx, client, stream, pane_id, deadline=deadline)
        except (errors.RunnerUnavailable, errors.PaneNotShell):
            dead = ctx.pane_state(pane_id)
            if dead.dead or dead.current_command != "ssh":
                raise _connect_error(ctx, server, pane_id) from None
            raise
    finally:
        client.unwatch(pane_id, stream)


def _shows_output(ctx: Context, pane_id: str) -> bool:
    """Whether the pane shows anything (one tmux round trip): a connection that came
    up before the caller watched (a pane left by an earlier timeout, or made before
    this process's client attached) prints nothing new while it idles at its
    prompt."""
    try:
        lines = ctx.tmux_batch(
            [
                ["display-message", "-p", "-t", pane_id, panes.STATE_FORMAT],
                ["capture-pane", "-p", "-t", pane_id],
            ]
        )
    except (errors.SessionNotFound, errors.PaneNotFound) as exc:
        raise errors.PaneNotFound(f"can't find pane: {pane_id}", pane=pane_id) from exc
    found = panes.parse_states(lines)
    if not found or found[0].pane_id != pane_id:
        raise errors.PaneNotFound(f"can't find pane: {pane_id}", pane=pane_id)
    screen = "\n".join(lines).rpartition(panes.RECORD_END)[2]
    return bool(screen.strip())


def _master_up(server: ServerLike) -> bool:
    """Whether the pane's ssh has its connection up (authenticated): ``ssh -O check``
    on the ControlMaster the pane's ssh opens. A process, so only asked of a pane
    that has been quiet for a while."""
    import subprocess

    argv = ssh_argv(server)
    argv[argv.index("--") : argv.index("--")] = ["-O", "check"]
    try:
        return (
            subprocess.run(
                argv, capture_output=True, timeout=5, stdin=subprocess.DEVNULL, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _ssh_messages(server: ServerLike) -> str:
    """The end of what the pane's ssh (and its hops) said about the connection."""
    try:
        with open(stderr_log(server), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def lost_error(server: ServerLike, pane: str | None = None) -> errors.SaneError:
    """Why a run on ``server`` was lost: its connection ended under it, in ssh's own
    last words (``Connection to HOST closed by remote host``, a broken pipe, a
    keep-alive timeout), or that ssh said nothing."""
    said = [line.strip() for line in _ssh_messages(server).splitlines() if line.strip()]
    reason = said[-1] if said else "ssh said nothing"
    return errors.ConnectionFailed(
        f"{server.name}: the connection ended during the run: {reason}",
        server=server.name,
        pane=pane,
        ssh_output="\n".join(said)[-2000:],
        hint="the run's end is unknown: `sane connect` reopens the pane; check the "
        "server before running the command again",
    )


def _connect_error(ctx: Context, server: ServerLike, pane_id: str) -> errors.SaneError:
    """Why the pane's ssh could not connect: its own words and how it exited, the one
    error every path that sees it fail builds. Its end is seen in three steps that a
    loaded machine spreads apart: ssh's process is gone (the pane's command is no
    longer ssh), tmux reads the pty's end and marks the pane dead, and only when it
    reaps ssh does it record the status (ssh's 255). The words are all written by the
    first step, and read at once; the status is waited for, bounded
    (:func:`~sane.ops.run.ending.dead_state`), so ``details.exit_status`` is what ssh
    returned, never missing because the failure was seen early (``None`` only if
    tmux never told it)."""
    said = _ssh_messages(server)
    state = poll(lambda: dead_state(ctx, pane_id), EXIT_SETTLE)
    status = state.dead_status if state is not None else None
    return classify(server, said, status=status, pane=pane_id)


def _timeout(server: ServerLike, pane_id: str, timeout: float) -> errors.SaneError:
    return timeout_error(server, timeout, _ssh_messages(server), pane=pane_id)


def connect_many(
    ctx: Context,
    servers: Sequence[ServerLike],
    accept_new: bool = False,
    max_parallel: int = DEFAULT_PARALLEL,
    on_event: OnEvent | None = None,
) -> list[dict[str, Any]]:
    """Open panes for many servers, at most ``max_parallel`` at once; one report each,
    told to ``on_event`` as soon as it is known (``sane.fleet.events``).

    The session's panes are listed once for all of them: a listing per server (each
    naming every pane) made the whole connect grow with N²."""
    ensure_session(ctx)
    known = server_panes(ctx)
    events = FleetEvents(on_event, "connect", len(servers))
    origin = events.origin

    def ms(t: float) -> float:
        return round((t - origin) * 1000, 3)

    def one(server: ServerLike) -> dict[str, Any]:
        events.started(server.name)
        started = time.perf_counter()
        report: dict[str, Any] = {"server": server.name, "ok": True, "pane": None, "error": None}
        try:
            state = open_server_pane(ctx, server, accept_new, known=known)
            # Which runner the remote shell took (posix, fish) and, when sane started
            # sh in place of a login shell it cannot drive, why (else null).
            report.update(
                pane=state.pane_id, shell=state.shell_kind, shell_note=state.shell_note or None
            )
        except errors.SaneError as exc:
            report.update(ok=False, error=exc.to_dict())
        finished = time.perf_counter()
        report.update(
            started_ms=ms(started),
            finished_ms=ms(finished),
            duration_ms=round((finished - started) * 1000, 3),
        )
        events.finished(report)
        return report

    reports = bounded_map(one, servers, max_parallel)
    # Cosmetic for sane (it finds panes by option): a layout that could not be made
    # fails no connection that succeeded.
    with contextlib.suppress(errors.SaneError):
        group_windows(ctx)
    return reports


# Panes closed by one tmux process (`kill-pane -t A ; kill-pane -t B ...`): a command
# line of a few kilobytes.
KILL_BATCH = 200


def down(ctx: Context, names: list[str] | None = None) -> list[str]:
    """Close the panes of ``names`` (all server panes when None); return who was closed.

    One tmux process per KILL_BATCH panes, not one per server (1,000 servers took a
    thousand processes). tmux stops a command list at the first command that fails (a
    pane that went away since it was listed): that batch is then closed pane by pane."""
    from sane.tmux.command import command_list

    found = {n: s.pane_id for n, s in server_panes(ctx).items() if names is None or n in names}
    targets = list(found.values())
    for start in range(0, len(targets), KILL_BATCH):
        batch = targets[start : start + KILL_BATCH]
        try:
            ctx.server.run(*command_list([["kill-pane", "-t", pane] for pane in batch]))
        except errors.SaneError:
            for pane in batch:
                ctx.server.run("kill-pane", "-t", pane, check=False)
    return sorted(found)


def pane_for_server(ctx: Context, name: str, accept_new: bool = False) -> str:
    """The pane id to run in for server ``name``, connecting on demand."""
    from sane.fleet.registry import Registry

    server = Registry(ctx.home).get(name)
    return open_server_pane(ctx, server, accept_new).pane_id


def resolve_target(ctx: Context, pane: str | None, server: str | None) -> str | None:
    """``--pane`` or ``--server`` (never both): the pane to use, None for the default."""
    if pane is not None and server is not None:
        raise errors.UsageError("give --pane or --server (MCP: pane or server), not both")
    if server is not None:
        return pane_for_server(ctx, server)
    return pane


def connection_states(ctx: Context) -> dict[str, str]:
    """Per server with a pane: ``connected`` (its ssh is alive) or ``unreachable`` (the
    connection dropped or never came up; the next run or ``sane connect`` reopens it).
    Servers without a pane are ``disconnected``; no tmux server means none has one."""
    try:
        found = server_panes(ctx)
    except errors.TmuxError:
        return {}
    return {name: "unreachable" if state.dead else "connected" for name, state in found.items()}


def file_channel(ctx: Context, name: str) -> Callable[[str, bytes], None]:
    """create-file's side channel for server ``name``: its pane's ssh connection."""
    from sane.fleet.registry import Registry
    from sane.fleet.ssh import upload

    server = Registry(ctx.home).get(name)
    return lambda path, data: upload(server, path, data)


# What a person needs to find a server's pane, whatever the layout (one window per
# server, or several servers' panes per window): asked by the pane's own @sane_server.
_PLACE_FIELDS = (
    "pane_id",
    panes.OPT_ROLE,
    panes.OPT_SERVER,
    "pane_dead",
    "session_name",
    "window_id",
    "window_index",
    "window_name",
    "window_panes",
    "pane_index",
)


def locate(ctx: Context, name: str, select: bool = False) -> dict[str, Any]:
    """Where registered server ``name``'s pane is in the orchestrator session: its
    pane, window and the ``tmux`` command that shows it to a person. ``select``: make
    it the session's current window and pane (what an attached client shows).

    Found by the pane's ``@sane_server`` option (one tmux command, one line back),
    never by window name or index: windows may hold several servers' panes."""
    from sane.fleet.registry import Registry
    from sane.tmux.command import command_list

    Registry(ctx.home).get(name)  # a name that is not registered: server_not_found
    argv = ["list-panes", "-s", "-t", f"={ctx.session_name}", "-F", panes.format_of(_PLACE_FIELDS)]
    if _PLAIN_NAME.fullmatch(name):
        argv[4:4] = ["-f", "#{==:#{" + panes.OPT_SERVER + "}," + name + "}"]
    try:
        out = ctx.server.run(*argv)
    except (errors.SessionNotFound, errors.PaneNotFound, errors.TmuxServerNotRunning):
        out = ""
    lines = out.removesuffix("\n").split("\n") if out else []
    found = [
        f
        for f in panes.split_records(lines, len(_PLACE_FIELDS))
        if f[1] == ROLE_SSH and f[2] == name
    ]
    if not found:
        raise errors.PaneNotFound(
            f"server {name} has no pane in session {ctx.session_name}: open one with "
            f"`sane connect {name}`",
            server=name,
            session=ctx.session_name,
        )
    pane_id, _, _, dead, session, window_id, index, window_name, count, pane_index = found[0]
    if select:
        ctx.server.run(
            *command_list([["select-window", "-t", pane_id], ["select-pane", "-t", pane_id]])
        )
    server = ctx.server
    tmux = ["tmux", *(["-S", server.socket_path] if server.socket_path else [])]
    tmux += ["-L", server.socket_name] if server.socket_name and not server.socket_path else []
    return {
        "server": name,
        "connection": "unreachable" if dead == "1" else "connected",
        "pane": pane_id,
        "session": session,
        "window": window_id,
        "window_index": int(index),
        "window_name": window_name,
        "window_panes": int(count),
        "pane_index": int(pane_index),
        "target": f"{session}:{index}.{pane_index}",
        "selected": select,
        "attach": shlex.join([*tmux, "attach-session", "-t", pane_id]),
        "switch": shlex.join([*tmux, "switch-client", "-t", pane_id]),
    }
