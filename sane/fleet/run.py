"""Run one command on many servers at once, each in its own ssh pane.

At most ``max_parallel`` servers are worked on at a time (default 5, as in Ansible),
each with its own deadline, connecting included, so an unreachable or hung server
never holds the others past that deadline. Every server ends with one
result; the fleet's status is ``completed`` (all ran and exited 0), ``failed`` (none
did) or ``partial``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sane import errors
from sane.fleet.defaults import PUT_TIMEOUT, RUN_TIMEOUT
from sane.fleet.events import Event, FleetEvents, OnEvent
from sane.fleet.layout import group_windows
from sane.fleet.limits import raise_own_open_files_limit
from sane.fleet.loop import RunStop, Wrap, run_fleet
from sane.fleet.panes import lost_error, open_server_pane, server_panes, taken_as_listed
from sane.fleet.spec import ServerLike
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import DEFAULT_MAX_OUTPUT, RunOptions, new_run_id
from sane.parallel import DEFAULT_PARALLEL, bounded_map
from sane.protocol import output
from sane.protocol.scanner import RunScanner
from sane.tmux.control import ControlClient

if TYPE_CHECKING:
    from sane.models import RunResult


class Runs(Protocol):
    """The caller's part in each server's run (the MCP server's: run ids a busy pane
    shows must be accepted by run_wait at every moment, see ``handlers._FleetRuns``).
    """

    def begin(self, run_id: str, stop: threading.Event) -> None:
        """Before the server's run with this id can be typed; ``stop``: that run's own
        (set, it hands over that run alone, as at its deadline)."""

    def end(
        self, run_id: str, outcome: RunResult | errors.SaneError
    ) -> RunResult | errors.SaneError:
        """The run's result (or error) as it becomes the server's report, in the
        server's own thread unless it ended plainly; what it returns is reported.
        Called once for every :meth:`begin`, whatever happens."""


def fleet_run(
    ctx: Context,
    servers: Sequence[ServerLike],
    command: str,
    max_parallel: int = DEFAULT_PARALLEL,
    timeout: float = RUN_TIMEOUT,
    on_event: Callable[[Event], None] | None = None,
    max_output: int | None = DEFAULT_MAX_OUTPUT,
    stop: threading.Event | None = None,
    clear_input: bool = False,
    runs: Runs | None = None,
) -> dict[str, Any]:
    """Run ``command`` on ``servers``; per-server results plus the fleet's status.

    ``max_output``: each server's output cap (head and tail kept, the whole saved).
    ``stop``: set (a Ctrl-C) to hand every run over at once, as at its deadline.
    ``clear_input``: text a person left on a server pane's command line is discarded
    (never run); without it that server's result is the error ``pane_has_input``.
    ``runs``: told of each server's run id before it is typed and of its outcome."""
    errors.refuse_nul("command", command)  # before any server, not once per server
    if max_parallel < 1:
        raise errors.InvalidArgument("max_parallel must be at least 1", max_parallel=max_parallel)
    raise_own_open_files_limit()
    events = FleetEvents(on_event, "fleet_run", len(servers))
    known = server_panes(ctx)

    base = RunOptions(max_output=max_output, stop=stop, clear_input=clear_input)

    # Run ids given to ``runs`` and not yet ended there (a run never typed, its
    # report never made: ended when fleet_run returns).
    begun: set[str] = set()
    begun_lock = threading.Lock()

    def begin(server: ServerLike) -> tuple[float, RunOptions, _Streamer | None]:
        started = events.started(server.name)
        hook = _Streamer(server.name, events.emit) if on_event is not None else None
        run_id = new_run_id()
        own = RunStop(stop)  # this run alone, or the fleet run's stop
        if runs is not None:
            with begun_lock:
                begun.add(run_id)
            runs.begin(run_id, own)
        options = base._replace(timeout=timeout, on_output=hook, run_id=run_id, stop=own)
        return started, options, hook

    def ended(
        run_id: str | None, outcome: RunResult | errors.SaneError
    ) -> RunResult | errors.SaneError:
        if runs is None or run_id is None:
            return outcome
        with begun_lock:
            if run_id not in begun:
                return outcome
            begun.discard(run_id)
        return runs.end(run_id, outcome)

    def report(
        server: ServerLike,
        started: float,
        hook: _Streamer | None,
        pane_id: str | None,
        run_id: str | None,
        outcome: RunResult | errors.SaneError,
    ) -> dict[str, Any]:
        """The server's report from its run's result (or the error it met)."""
        outcome = ended(run_id, outcome)
        report: dict[str, Any] = {"server": server.name, "started_ms": started}
        if isinstance(outcome, errors.NotStarted):  # seen by the thread about to type
            outcome = _stopped(server)
        if isinstance(outcome, errors.SaneError):
            report.update(
                status=_error_status(outcome),
                exit_code=None,
                output="",
                ok=False,
                error=outcome.to_dict(),
            )
            # The server's pane, where the error names one (a connect or takeover
            # ended by the deadline keeps it for the next run): it read null.
            pane = pane_id or outcome.details.get("pane")
            if pane is not None:
                report["pane"] = pane
        else:
            if hook is not None:
                hook.flush(outcome["output"])
            report.update(outcome)
            report["ok"] = outcome["status"] == "completed" and outcome["exit_code"] == 0
            lost = outcome["status"] == "lost" and pane_id is not None
            report["error"] = lost_error(server, pane_id).to_dict() if lost else None
        report["finished_ms"] = events.ms()
        events.finished(report)
        return report

    def warm(index: int) -> tuple[RunOptions, Wrap]:
        """A warm pane's run, typed and followed by the loop (sane.fleet.loop)."""
        server = servers[index]
        started, options, hook = begin(server)
        pane_id = states[index].pane_id  # type: ignore[union-attr]  # warm: listed
        return options, functools.partial(report, server, started, hook, pane_id, options.run_id)

    def one(index: int) -> dict[str, Any]:
        server = servers[index]
        started, options, hook = begin(server)
        deadline = time.monotonic() + timeout
        pane_id: str | None = None
        try:
            # One deadline per server covers connecting (a cold or hung server) and
            # the run, so no server keeps the fleet's answer waiting past it.
            state = open_server_pane(ctx, server, known=known, timeout=timeout)
            pane_id = state.pane_id
            remaining = max(0.0, deadline - time.monotonic())
            outcome: RunResult | errors.SaneError = run_command(
                ctx,
                command,
                pane=state.pane_id,
                pane_state=state,
                options=options._replace(timeout=remaining),
            )
        except errors.SaneError as exc:
            outcome = exc
        return report(server, started, hook, pane_id, options.run_id, outcome)

    def not_started(index: int) -> dict[str, Any]:
        """A server the stop reached before its turn: nothing opened, nothing typed."""
        return report(servers[index], events.ms(), None, None, None, _stopped(servers[index]))

    listed = [known.get(s.name) for s in servers]
    states = [state if taken_as_listed(state) else None for state in listed]
    try:
        results = run_fleet(ctx, states, command, base, max_parallel, warm, one, not_started)
    finally:
        for run_id in list(begun):  # never typed (a stop before its line went)
            ended(run_id, errors.NotStarted("the fleet run was stopped before typing it"))
    if any(s.name not in known for s in servers):  # panes were opened: group them
        with contextlib.suppress(errors.SaneError):  # cosmetic (see connect_many)
            group_windows(ctx)
    counts = {"total": len(results), "ok": sum(r["ok"] for r in results)}
    for key in (
        "completed",
        "running",
        "not_started",
        "interrupted",
        "lost",
        "unreachable",
        "error",
        "waiting_input",
    ):
        counts[key] = sum(r["status"] == key for r in results)
    counts["nonzero_exit"] = sum(r["status"] == "completed" and not r["ok"] for r in results)
    if results and counts["ok"] == len(results):
        status = "completed"
    elif counts["ok"] == 0:
        status = "failed"
    else:
        status = "partial"
    return {
        "status": status,
        "command": command,
        "counts": counts,
        "results": results,
        "duration_ms": events.ms(),
    }


def _error_status(error: errors.SaneError) -> str:
    """A server's status when its run gave no result: the one mapping of errors to
    ``unreachable``, ``not_started`` and ``error``."""
    if isinstance(error, errors.ConnectionFailed):
        return "unreachable"
    return "not_started" if isinstance(error, errors.NotStarted) else "error"


def _stopped(server: ServerLike) -> errors.NotStarted:
    """A server whose command the fleet run's stop kept from being typed."""
    return errors.NotStarted(
        f"{server.name}: not started: the fleet run was stopped (Ctrl-C, or its call "
        "cancelled) before its command was typed; nothing ran there and its pane is free",
        reason="cancelled",
        server=server.name,
    )


class _Streamer:
    """Output hook emitting each new, complete piece of a server's output as it comes.

    Pieces are cut where cleaning cannot change (see ``output.safe_cut``), so the
    pieces joined are exactly the run's output; ``flush`` sends what the run's last
    read brought.
    """

    def __init__(self, name: str, emit: Callable[[Event], None]) -> None:
        self.name = name
        self.emit = emit
        self.raw_sent = 0
        self.text_sent = 0

    def __call__(self, client: ControlClient, pane_id: str, scanner: RunScanner) -> None:
        piece = scanner.region()[self.raw_sent :]
        piece = piece[: output.safe_cut(piece)]
        if piece:
            self.raw_sent += len(piece)
            self._send(output.clean(piece).decode("utf-8", "replace"))

    def flush(self, full_output: str) -> None:
        self._send(full_output[self.text_sent :])

    def _send(self, text: str) -> None:
        if text:
            self.text_sent += len(text)
            self.emit({"event": "output", "server": self.name, "data": text})


def _parallel(
    servers: Sequence[ServerLike],
    max_parallel: int,
    work: Callable[[ServerLike], dict[str, Any]],
    events: FleetEvents,
) -> list[dict[str, Any]]:
    """``work`` on each server, at most ``max_parallel`` at once; errors become results,
    each told to ``events`` as soon as it is known."""

    def one(server: ServerLike) -> dict[str, Any]:
        events.started(server.name)
        try:
            result = {"server": server.name, "ok": True, "error": None, **work(server)}
        except errors.SaneError as exc:
            result = {"server": server.name, "ok": False, "error": exc.to_dict()}
        events.finished(result)
        return result

    return bounded_map(one, servers, max_parallel)


def _summary(results: list[dict[str, Any]]) -> str:
    ok = sum(r["ok"] for r in results)
    return "completed" if results and ok == len(results) else "failed" if ok == 0 else "partial"


def remote_sha256(server: ServerLike, path: str) -> str | None:
    """The sha256 of ``path`` on ``server`` (over its ssh connection), None if absent."""
    import shlex
    import subprocess

    from sane.fleet.ssh import classify, run_remote, timeout_error

    quoted = shlex.quote(path)
    script = (
        f"if [ -f {quoted} ]; then (sha256sum -- {quoted} || shasum -a 256 -- {quoted})"
        " 2>/dev/null; fi"
    )
    try:
        result = run_remote(server, script, timeout=60)
    except subprocess.TimeoutExpired:
        raise timeout_error(server, 60) from None
    if result.status == 255:
        raise classify(server, result.stderr, status=255)
    digest = (result.stdout or b"").decode("ascii", "replace").split(" ", 1)[0].strip()
    return digest or None


def fleet_put(
    ctx: Context,
    servers: Sequence[ServerLike],
    path: str,
    content: bytes,
    mode: int | None = None,
    parents: bool = False,
    max_parallel: int = DEFAULT_PARALLEL,
    timeout: float = PUT_TIMEOUT,
    on_event: OnEvent | None = None,
) -> dict[str, Any]:
    """create-file on many servers; a server whose file already has the same sha256 is
    skipped (``unchanged``): the deployment cache.

    One ssh command per server over its pane's ControlMaster, the content on its stdin
    (as scp over the same connection would cost): the checks, the cache and the
    checked rename all happen in that one command (``create_file.write_over``)."""
    import hashlib

    from sane.fleet.ssh import remote_path
    from sane.ops.create_file import write_over

    try:
        remote_path(path)
    except ValueError as exc:
        raise errors.InvalidArgument(f"fleet put: {path!r} {exc}", path=path) from None
    digest = hashlib.sha256(content).hexdigest()
    raise_own_open_files_limit()
    events = FleetEvents(on_event, "fleet_put", len(servers))
    known = server_panes(ctx)
    # ``~/x`` is each login's own home, as in plans: the command starts there.
    target = path[2:] if path.startswith("~/") else path

    def put(server: ServerLike) -> dict[str, Any]:
        pane = open_server_pane(ctx, server, known=known).pane_id
        return dict(
            write_over(
                _remote_runner(server, timeout),
                target,
                content,
                pane,
                mode=mode,
                parents=parents,
                skip_same=True,
            )
        )

    results = _parallel(servers, max_parallel, put, events)
    return {
        "status": _summary(results),
        "sha256": digest,
        "bytes": len(content),
        "results": results,
    }


def _remote_runner(server: ServerLike, timeout: float) -> Callable[[str, bytes], str]:
    """``write_over``'s way to the host: ``run_remote`` over the server's connection,
    ssh's failures classified."""
    import subprocess

    from sane.fleet.ssh import classify, run_remote, timeout_error

    def run(script: str, data: bytes) -> str:
        try:
            result = run_remote(server, script, data=data, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise timeout_error(server, timeout) from None
        if result.status == 255:
            raise classify(server, result.stderr, status=255)
        if result.stdout is None:
            raise errors.TransferFailed(
                f"{server.name}: the login's shell did not run sane's script: "
                f"{result.stderr.strip()[-300:]}",
                server=server.name,
            )
        return result.stdout.decode("utf-8", "replace")

    return run


def fleet_detect(
    ctx: Context,
    servers: Sequence[ServerLike],
    max_parallel: int = DEFAULT_PARALLEL,
    on_event: OnEvent | None = None,
) -> dict[str, Any]:
    """detect-platform on every server's pane."""
    from sane.ops.detect_platform import detect_platform

    events = FleetEvents(on_event, "fleet_detect", len(servers))
    known = server_panes(ctx)

    def detect(server: ServerLike) -> dict[str, Any]:
        pane = open_server_pane(ctx, server, known=known).pane_id
        return dict(detect_platform(ctx, pane=pane))

    results = _parallel(servers, max_parallel, detect, events)
    return {"status": _summary(results), "results": results}
