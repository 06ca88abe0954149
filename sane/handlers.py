"""What each command does once its arguments are parsed: one handler per command,
shared by every way in (``sane mcp``, ``sane call`` and the CLI, click or the fast
front door), so the document, the exit status and the server selection are decided in
one place.

A handler takes the context, the parsed arguments (an instance of the command's
input model from :mod:`sane.inputs`, or, from the CLI, the same fields checked by
click against the same constraints) and a :class:`Call`, and returns an
:class:`Outcome`. This module imports neither pydantic nor click: a one-shot CLI call
must not pay for them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sane import errors
from sane.envelope import check_failure, error_document, ok_document

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sane import inputs
    from sane.models import RunResult
    from sane.ops.context import Context

Event = dict[str, Any]


class Outcome(tuple[dict[str, Any], int]):
    """A finished call: the JSON document and the exit status the CLI would give.

    (A plain tuple subclass, not a NamedTuple or a dataclass: a one-shot CLI call
    imports this module, and creating those classes costs milliseconds at start-up.)"""

    __slots__ = ()

    def __new__(cls, document: dict[str, Any], exit_status: int) -> Outcome:
        return super().__new__(cls, (document, exit_status))

    @property
    def document(self) -> dict[str, Any]:
        return self[0]

    @property
    def exit_status(self) -> int:
        return self[1]


class Call:
    """What one call's caller can do to it while it runs (from another thread).

    ``cancel()``: the client gave up on the call (MCP ``notifications/cancelled``, or
    its own request timeout). A run stops being followed at once and is handed over,
    then by the call's ``on_cancel`` interrupted (its pane free within a second) or
    left running for ``run_wait``.

    ``progress``: set by a caller that asked for progress (an MCP ``progressToken``):
    called with a message and, when known, the total, from the call's own thread.
    ``events``: set by a caller that wants every event as it happens (the CLI's
    ``--stream``): fleet runs' started/output/finished, health changes, deploy journal
    events. (A plain class: see :class:`Outcome`.)
    """

    def __init__(
        self,
        progress: Callable[[str, float | None], None] | None = None,
        events: Callable[[Event], None] | None = None,
    ) -> None:
        self.cancelled = threading.Event()
        self.stop = threading.Event()
        self.progress = progress
        self.events = events

    def cancel(self) -> None:
        self.cancelled.set()
        self.stop.set()

    def report(self, message: str, total: float | None = None) -> None:
        if self.progress is not None:
            self.progress(message, total)

    def listener(self, progress: Callable[[Event], None]) -> Callable[[Event], None] | None:
        """The library's event callback for this call: every event to ``events``, and
        ``progress`` (which picks the events worth a notification) when progress was
        asked for; None when nobody listens (the library then skips the work)."""
        events, wanted = self.events, self.progress is not None
        if events is None:
            return progress if wanted else None
        if not wanted:
            return events

        def both(event: Event) -> None:
            events(event)
            progress(event)

        return both


class _Background:
    """Work that outlives its call (a deploy returns its id at once): the threads, so
    that a server shutting down waits for them rather than cutting a deploy off."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def start(self, work: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=work, name=name)
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join()


BACKGROUND = _Background()


class _Calls:
    """The calls running in this process's worker threads, so that a server shutting
    down (its client gone: stdin closed, maybe right after cancelling a call) first
    cancels those still going and waits for their wind-down. Before, the process
    exited while a cancelled run was being interrupted: its command went on in the
    pane with no record, the pane busy for the command's whole life and its run id
    refused by run_wait/run_interrupt (``run_not_found``)."""

    def __init__(self) -> None:
        self.idle = threading.Condition()
        self.running: set[Call] = set()

    @contextmanager
    def follow(self, call: Call) -> Iterator[None]:
        with self.idle:
            self.running.add(call)
        try:
            yield
        finally:
            with self.idle:
                self.running.discard(call)
                self.idle.notify_all()

    def wind_down(self, timeout: float) -> None:
        """Cancel every call still running (each by its ``on_cancel``) and wait up to
        ``timeout`` seconds for them to end."""
        with self.idle:
            for call in self.running:
                call.cancel()
            self.idle.wait_for(lambda: not self.running, timeout)


CALLS = _Calls()


class _InFlight:
    """The runs this process follows inside a call right now, and the results of the
    last ones that ended inside their first call.

    Why: a busy pane's ``pane_busy`` error names its run id while the first call is
    still following it, before any record exists. ``run_wait``/``run_interrupt``/
    ``run_input`` of such an id take the run over (the first call hands it over and
    answers ``running``); of a run that already ended here, they get its result.
    """

    KEEP = 256

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.following: dict[str, tuple[threading.Event, threading.Event]] = {}
        self.ended: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @contextmanager
    def follow(self, run_id: str, stop: threading.Event) -> Iterator[None]:
        self.start(run_id, stop)
        try:
            yield
        finally:
            self.end(run_id)

    def start(self, run_id: str, stop: threading.Event) -> None:
        """``run_id`` is followed by a call until :meth:`end`; ``stop`` makes it hand
        the run over (a fleet_run's runs share their call's)."""
        with self.lock:
            self.following[run_id] = (stop, threading.Event())

    def end(self, run_id: str) -> None:
        """The call is done with ``run_id``: a take-over waiting on it goes on (after
        :meth:`ended_here`, with the run's ending)."""
        with self.lock:
            _, done = self.following.pop(run_id)
        done.set()

    def ended_here(self, result: Mapping[str, Any], unread: bool = False) -> None:
        """``unread``: the call was cancelled, its client never read ``result``: the
        next call on the run gets all of it."""
        if result["status"] in ("running", "waiting_input"):
            return
        with self.lock:
            self.ended[result["run_id"]] = {**result, "unread": unread}
            while len(self.ended) > self.KEEP:
                self.ended.popitem(last=False)

    def take_over(self, run_id: str, timeout: float = 30.0) -> dict[str, Any] | None:
        """Make the call following ``run_id`` hand it over; the run's result if it ended
        inside its first call (then there is nothing to wait on)."""
        with self.lock:
            entry = self.following.get(run_id)
        if entry is not None:
            stop, done = entry
            stop.set()
            done.wait(timeout)
        with self.lock:
            entry_ended = self.ended.get(run_id)
            if entry_ended is None:
                return None
            unread = entry_ended["unread"]
            entry_ended["unread"] = False  # the next call after this one: nothing new
            ended = {k: v for k, v in entry_ended.items() if k != "unread"}
        if unread:
            return ended
        # Everything was returned to the first call: nothing new, the same ending.
        return {
            **ended,
            "output": "",
            "output_base64": None,
            "truncated": False,
            "full_output_path": None,
            "output_bytes": 0,
            "output_start": ended["output_start"] + ended["output_bytes"],
        }


IN_FLIGHT = _InFlight()

# -- handlers: parse nothing, call the library, shape the document -----------------------


def _ok(result: Mapping[str, Any], status: int = errors.EXIT_OK) -> Outcome:
    return Outcome(ok_document(result), status)


def _run_outcome(result: Mapping[str, Any], check: bool) -> Outcome:
    failure = check_failure(result) if check else None
    if failure is not None:
        return Outcome(error_document(failure, extra=result), failure.exit_status)
    status = result["status"]
    code = (
        errors.EXIT_OK
        if status == "completed"
        else errors.EXIT_CONNECTION
        if status == "lost"
        else errors.EXIT_TIMEOUT
    )
    return _ok(result, code)


def _target(ctx: Context, pane: str | None, server: str | None) -> str | None:
    if server is None:
        return pane
    from sane.fleet.panes import resolve_target

    return resolve_target(ctx, pane, server)


def _run_command(ctx: Context, a: inputs.RunCommandInput, call: Call) -> Outcome:
    from sane.ops.run.command import run_command
    from sane.ops.run.options import RunOptions, new_run_id
    from sane.ops.run.resume import run_interrupt

    run_id = new_run_id()
    options = RunOptions(
        timeout=a.timeout,
        interrupt_on_timeout=a.interrupt_on_timeout,
        keep_ansi=a.keep_ansi,
        max_output=a.max_output or None,
        quiet_period=a.quiet_period or None,
        run_id=run_id,
        stop=call.stop,
        unread=call.cancelled,
        on_output=_OutputProgress(call) if call.progress else None,
        clear_input=a.clear_input,
    )
    with IN_FLIGHT.follow(run_id, call.stop):
        result = run_command(ctx, a.command, pane=_target(ctx, a.pane, a.server), options=options)
    IN_FLIGHT.ended_here(result, unread=call.cancelled.is_set())
    if (
        call.cancelled.is_set()
        and a.on_cancel == "interrupt"
        and result["status"] in ("running", "waiting_input")
    ):
        from sane.ops.run.resume import Following

        # nobody reads this ending either: run_wait returns it whole
        result = run_interrupt(ctx, run_id, follow=Following(unread=call.cancelled))
    return _run_outcome(result, a.check)


class _OutputProgress:
    """A run's new output as progress, at most every ``EVERY`` seconds (a busy command
    must not pay a notification per chunk); the result still carries all of it."""

    EVERY = 0.25
    TAIL = 2000

    def __init__(self, call: Call, raw_sent: int = 0) -> None:
        self.call = call
        self.raw_sent = raw_sent
        self.last = 0.0

    @classmethod
    def resumed(cls, ctx: Context, call: Call, run_id: str) -> _OutputProgress | None:
        """For a later call on a handed-over run: its output from what was returned."""
        from sane.ops.run.record import load_record

        if call.progress is None:
            return None
        try:
            return cls(call, load_record(ctx, run_id)["raw_returned"])
        except errors.SaneError:  # the call itself says why (run_not_found, ...)
            return cls(call)

    def __call__(self, client: Any, pane_id: str, scanner: Any) -> None:
        import time

        from sane.protocol import output

        now = time.monotonic()
        if now - self.last < self.EVERY:
            return
        piece = scanner.region()[self.raw_sent :]
        piece = piece[: output.safe_cut(piece)]
        if piece:
            self.last = now
            self.raw_sent += len(piece)
            self.call.report(output.clean(piece).decode("utf-8", "replace")[-self.TAIL :])


def _run_wait(ctx: Context, a: inputs.RunWaitInput, call: Call) -> Outcome:
    from sane.ops.run.resume import run_wait

    ended = IN_FLIGHT.take_over(a.run_id)
    if ended is not None:
        return _run_outcome(ended, a.check)
    following = _following(ctx, call, a.run_id)
    return _run_outcome(
        run_wait(
            ctx,
            a.run_id,
            timeout=a.timeout,
            quiet_period=a.quiet_period or None,
            follow=following,
        ),
        a.check,
    )


def _following(ctx: Context, call: Call, run_id: str) -> Any:
    """A later call's part in following a run: progress, and its cancellation."""
    from sane.ops.run.resume import Following

    return Following(_OutputProgress.resumed(ctx, call, run_id), call.stop, call.cancelled)


def _run_input(ctx: Context, a: inputs.RunInputInput, call: Call) -> Outcome:
    from sane.ops.run.resume import check_answer, run_input

    check_answer(a.text, a.multi_line)
    if IN_FLIGHT.take_over(a.run_id) is not None:
        raise errors.RunFinished(
            f"run {a.run_id} has ended, so nothing was typed (the text "
            "would have gone to the shell as a command); run_wait "
            "returns its result",
            run_id=a.run_id,
            status=None,
        )
    result = run_input(
        ctx,
        a.run_id,
        a.text,
        enter=not a.no_enter,
        timeout=a.timeout,
        quiet_period=a.quiet_period or None,
        multi_line=a.multi_line,
        follow=_following(ctx, call, a.run_id),
    )
    return _run_outcome(result, a.check)


def _run_interrupt(ctx: Context, a: inputs.RunInterruptInput, call: Call) -> Outcome:
    from sane.ops.run.resume import run_interrupt

    owner = run_owner(ctx, a.run_id)
    if owner is not None and not a.force:
        raise errors.RunOwned(
            f"run {a.run_id} is step {owner.get('step')} of deploy {owner.get('deploy_id')} "
            f"on server {owner.get('server')}: interrupting it would fail the step and roll "
            "the deploy back, so nothing was sent. Follow the deploy with deploy_status; "
            "give force: true to interrupt it anyway",
            run_id=a.run_id,
            owner=owner,
        )
    ended = IN_FLIGHT.take_over(a.run_id)
    if ended is not None:
        return _run_outcome(ended, False)
    return _run_outcome(run_interrupt(ctx, a.run_id, grace=a.grace), False)


def _create_file(ctx: Context, a: inputs.CreateFileInput, call: Call) -> Outcome:
    from sane.ops.create_file import create_file

    if a.content is not None and a.content_base64 is not None:
        raise errors.InvalidArgument("give content or content_base64, not both")
    try:
        data = (
            base64.b64decode(a.content_base64, validate=True)
            if a.content_base64 is not None
            else (a.content or "").encode("utf-8")
        )
    except binascii.Error:
        raise errors.InvalidArgument(
            "content_base64 is not valid base64", field="content_base64"
        ) from None
    pane = _target(ctx, a.pane, a.server)
    side_channel = None
    if a.server is not None:
        from sane.fleet.panes import file_channel

        side_channel = file_channel(ctx, a.server)
    result = create_file(
        ctx,
        a.path,
        data,
        pane=pane,
        mode=int(a.mode, 8) if a.mode else None,
        parents=a.parents,
        no_overwrite=a.no_overwrite,
        backup=a.backup,
        expected_sha256=a.sha256.lower() if a.sha256 else None,
        timeout=a.timeout,
        side_channel=side_channel,
        clear_input=a.clear_input,
    )
    return _ok(result)


def _detect_platform(ctx: Context, a: inputs.DetectPlatformInput, call: Call) -> Outcome:
    from sane.ops.detect_platform import detect_platform

    return _ok(
        detect_platform(
            ctx, pane=_target(ctx, a.pane, a.server), timeout=a.timeout, clear_input=a.clear_input
        )
    )


def _list_panes(ctx: Context, a: inputs.ListPanesInput, call: Call) -> Outcome:
    from sane.ops.list_panes import list_panes

    return _ok(list_panes(ctx, session=a.session, all_sessions=a.all))


def _server_list(ctx: Context, a: inputs.ServerListInput, call: Call) -> Outcome:
    from sane.fleet.health import read_history
    from sane.fleet.panes import connection_states
    from sane.fleet.registry import Registry

    servers = [s for s in Registry(ctx.home).servers() if a.tag is None or a.tag in s.tags]
    states = connection_states(ctx)
    history = read_history(ctx.home)
    return _ok(
        {
            "servers": [
                {
                    **s.model_dump(mode="json"),
                    "connection": states.get(s.name, "disconnected"),
                    "health_history": history.get(s.name),
                }
                for s in servers
            ]
        }
    )


def _server_add(ctx: Context, a: inputs.ServerAddInput, call: Call) -> Outcome:
    from sane.fleet.registry import Registry, Server
    from sane.fleet.ssh import entry_warnings, resolve

    identity = os.path.abspath(os.path.expanduser(a.identity)) if a.identity else None
    server = validated(
        Server,
        {
            "name": a.name,
            "host": a.host,
            "port": a.port,
            "user": a.user,
            "identity_file": identity,
            "ssh_options": a.ssh_options,
            "tags": a.tags,
            "health_path": a.health_path,
        },
    )
    if server.ssh_options:
        resolve(server)  # ssh itself must accept the option values
    Registry(ctx.home).add(server, replace=a.replace)
    return _ok({"server": server.model_dump(mode="json"), "warnings": entry_warnings(server)})


def _server_test(ctx: Context, a: inputs.ServerTestInput, call: Call) -> Outcome:
    from sane.fleet.registry import Registry
    from sane.fleet.ssh import probe_connection

    server = Registry(ctx.home).get(a.name)
    return _ok(
        {
            "server": a.name,
            "reachable": True,
            "latency_ms": probe_connection(server, accept_new=a.accept_new),
        }
    )


def _select(
    ctx: Context, names: list[str] | None, tag: str | None, all_servers: bool, quick: bool = False
) -> Any:
    """The servers named (in that order), or with ``tag``; all of them when nothing
    narrows the choice (an empty list of names is not nothing: see
    ``sane.fleet.selection``): the same rule for every command. ``quick``: without importing
    pydantic when servers.json is as sane last validated it (a fleet run on warm panes
    costs less than that import)."""
    from sane.fleet.selection import narrow

    picked, every = narrow(names, tag, all_servers)
    if quick:
        from sane.fleet.quick import quick_select

        spec = quick_select(ctx.home, picked, tag, every)
        if spec is not None:
            return spec
    from sane.fleet.registry import select_servers

    return select_servers(ctx.home, names, tag, all_servers)


def _per_server(call: Call, total: int) -> Callable[[dict[str, Any]], None] | None:
    """A fleet operation's listener (``sane.fleet.events``): every event to the
    caller's ``events``, and one progress notification per server as it finishes."""
    from sane.fleet.events import describe

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "finished":
            call.report(f"{event['server']}: {describe(event)}", total)

    return call.listener(on_event)


def _fleet_run(ctx: Context, a: inputs.FleetRunInput, call: Call) -> Outcome:
    from sane.fleet.run import fleet_run

    servers = _select(ctx, a.servers, a.tag, a.all, quick=True)
    caps = [
        cap
        for cap in (
            a.max_output_per_server,
            a.max_output // max(1, len(servers)) if a.max_output else 0,
        )
        if cap
    ]

    result = fleet_run(
        ctx,
        servers,
        a.command,
        a.max_parallel,
        a.timeout,
        on_event=_per_server(call, len(servers)),
        max_output=max(1, min(caps)) if caps else None,
        stop=call.stop,
        clear_input=a.clear_input,
        runs=_FleetRuns(ctx, call, a.on_cancel == "interrupt"),
    )
    return _ok(result, errors.EXIT_OK if result["status"] == "completed" else 1)


class _FleetRuns:
    """A fleet_run call's part in each server's run (``sane.fleet.run.Runs``), as
    ``_run_command`` does for its one run: the run's id is followed in ``IN_FLIGHT``
    from before it is typed until its report is made, so the id a busy pane shows is
    taken over by run_wait/run_interrupt/run_input at every moment (a run that ended
    here: its result). On a cancellation (``on_cancel`` ``interrupt``) each run
    handed over is interrupted in its own server's thread, all at once, still inside
    that window: a take-over waits for it and gets the interrupted ending, never a
    second interrupt racing the first on the run's record. Before, the ids were
    refused (``run_not_found``) until the interrupts, made one after the other once
    fleet_run returned, had written their records, ~2.5 s on 3 servers."""

    def __init__(self, ctx: Context, call: Call, interrupt: bool) -> None:
        self.ctx = ctx
        self.call = call
        self.interrupt = interrupt

    def begin(self, run_id: str, stop: threading.Event) -> None:
        IN_FLIGHT.start(run_id, stop)  # a take-over stops this run alone

    def end(
        self, run_id: str, outcome: RunResult | errors.SaneError
    ) -> RunResult | errors.SaneError:
        from sane.ops.run.resume import Following, run_interrupt

        cancelled = self.call.cancelled.is_set()
        try:
            if isinstance(outcome, errors.SaneError):
                return outcome
            if cancelled and self.interrupt and outcome["status"] in ("running", "waiting_input"):
                with contextlib.suppress(errors.SaneError):  # ended meanwhile, or gone
                    # nobody reads this ending either: run_wait returns it whole
                    outcome = run_interrupt(
                        self.ctx, run_id, follow=Following(unread=self.call.cancelled)
                    )
            IN_FLIGHT.ended_here(outcome, unread=cancelled)
            return outcome
        finally:
            IN_FLIGHT.end(run_id)


def _health(ctx: Context, a: inputs.HealthInput, call: Call) -> Outcome:
    from sane.fleet.health import check

    servers = _select(ctx, a.servers, a.tag, False)
    return _ok(
        check(
            ctx.home,
            servers,
            a.query,
            a.max_parallel,
            on_event=_per_server(call, len(servers)),
        )
    )


def _health_wait(ctx: Context, a: inputs.HealthWaitInput, call: Call) -> Outcome:
    from sane.fleet.health import wait

    def on_event(event: dict[str, Any]) -> None:  # per change of a server's status
        call.report(
            f"{event['server']}: {event['status']}"
            + (f" ({event['reason']})" if event.get("reason") else "")
        )

    result = wait(
        ctx.home,
        _select(ctx, a.servers, a.tag, False),
        a.until,
        a.mode,
        a.timeout,
        a.interval,
        call.listener(on_event),
    )
    return _ok(result, errors.EXIT_OK if result["met"] else errors.EXIT_TIMEOUT)


def _deploy_outcome(result: Mapping[str, Any], done: Callable[[str], bool]) -> Outcome:
    return _ok(
        result, errors.EXIT_OK if done(result["status"]) or result["status"] == "running" else 1
    )


def _saga(
    ctx: Context,
    call: Call,
    wait: bool,
    deploy_id: str | None,
    work: Callable[[Callable[[dict[str, Any]], None]], dict[str, Any]],
    done: Callable[[str], bool] = lambda status: status == "completed",
) -> Outcome:
    """Run a deploy, resume or rollback: to the end with ``wait`` (a progress
    notification per journal event), else in the background, answering with the
    deploy's status as soon as its journal has the first event (its id, then)."""
    from sane.deploy import api

    if wait:

        def report(event: dict[str, Any]) -> None:
            where = f"{event.get('server')}: " if event.get("server") else ""
            call.report(f"{where}{event.get('event')} {event.get('item') or ''}".rstrip())

        return _deploy_outcome(work(call.listener(report) or (lambda _: None)), done)
    begun = threading.Event()
    box: dict[str, Any] = {"deploy_id": deploy_id}

    def on_event(event: dict[str, Any]) -> None:
        if box["deploy_id"] is None:
            box["deploy_id"] = event.get("deploy_id")
        begun.set()

    def body() -> None:
        try:
            box["result"] = work(on_event)
        except Exception as exc:  # reported to the caller, or kept in the journal
            box["error"] = exc
        finally:
            begun.set()

    BACKGROUND.start(body, f"sane-deploy-{deploy_id or 'new'}")
    begun.wait()
    if "error" in box:
        raise box["error"]
    if "result" in box:
        return _deploy_outcome(box["result"], done)
    return _deploy_outcome(api.status(ctx, box["deploy_id"]), done)


NO_SERVERS = (
    "name the servers to deploy to: servers, tag or all (on the command line "
    "--servers a,b, --tag T or --all); a deploy never picks every server by "
    "default"
)


def _deploy(ctx: Context, a: inputs.DeployInput, call: Call) -> Outcome:
    from sane.deploy import api

    if a.servers is None and not (a.tag or a.all):  # an empty list: no_servers_selected
        raise errors.UsageError(NO_SERVERS)
    servers = _select(ctx, a.servers, a.tag, a.all)
    return _saga(
        ctx,
        call,
        a.wait,
        None,
        lambda on_event: api.deploy(
            ctx, a.plan, servers, on_event, a.env, a.max_parallel, a.allow_outside_sources
        ),
    )


def _deploy_plan_check(ctx: Context, a: inputs.DeployPlanCheckInput, call: Call) -> Outcome:
    from sane.deploy import api

    if a.servers is None and not (a.tag or a.all):  # an empty list: no_servers_selected
        raise errors.UsageError(NO_SERVERS)
    return _ok(
        api.dry_run(
            a.plan,
            _select(ctx, a.servers, a.tag, a.all),
            a.env,
            a.max_parallel,
            a.allow_outside_sources,
        )
    )


def _deploy_status(ctx: Context, a: inputs.DeployStatusInput, call: Call) -> Outcome:
    from sane.deploy import api

    return _ok(api.status(ctx, a.deploy_id))


def _deploy_list(ctx: Context, a: inputs.DeployListInput, call: Call) -> Outcome:
    from sane.deploy import api

    return _ok(api.list_deploys(ctx))


def _deploy_resume(ctx: Context, a: inputs.DeployResumeInput, call: Call) -> Outcome:
    from sane.deploy import api

    return _saga(
        ctx, call, a.wait, a.deploy_id, lambda on_event: api.resume(ctx, a.deploy_id, on_event)
    )


def _deploy_rollback(ctx: Context, a: inputs.DeployRollbackInput, call: Call) -> Outcome:
    from sane.deploy import api

    return _saga(
        ctx,
        call,
        a.wait,
        a.deploy_id,
        lambda on_event: api.rollback(ctx, a.deploy_id, on_event),
        lambda status: status in ("rolled_back", "completed"),
    )


def _read_screen(ctx: Context, a: inputs.ReadScreenInput, call: Call) -> Outcome:
    from sane.ops.screen import read_screen

    return _ok(read_screen(ctx, _target(ctx, a.pane, a.server), a.lines))


def _send_keys(ctx: Context, a: inputs.SendKeysInput, call: Call) -> Outcome:
    from sane.ops.screen import send_keys

    return _ok(send_keys(ctx, _target(ctx, a.pane, a.server), a.keys, a.text, a.enter))


def _wait_for_text(ctx: Context, a: inputs.WaitForTextInput, call: Call) -> Outcome:
    from sane.ops.screen import wait_for_text

    result = wait_for_text(
        ctx,
        _target(ctx, a.pane, a.server),
        a.pattern,
        a.timeout,
        a.lines,
        call.stop,
        call.report if call.progress else None,
    )
    return _ok(result, errors.EXIT_OK if result["matched"] else errors.EXIT_TIMEOUT)


def _server_show(ctx: Context, a: inputs.ServerShowInput, call: Call) -> Outcome:
    from sane.fleet.registry import Registry

    return _ok({"server": Registry(ctx.home).get(a.name).model_dump(mode="json")})


def _server_pane(ctx: Context, a: inputs.ServerPaneInput, call: Call) -> Outcome:
    from sane.fleet.panes import locate

    return _ok(locate(ctx, a.name, a.select))


def _server_remove(ctx: Context, a: inputs.ServerRemoveInput, call: Call) -> Outcome:
    from sane.fleet.registry import Registry

    return _ok({"removed": Registry(ctx.home).remove(a.name).model_dump(mode="json")})


def _server_import(ctx: Context, a: inputs.ServerImportInput, call: Call) -> Outcome:
    from sane.fleet.importers import from_ansible_inventory, from_ssh_config
    from sane.fleet.registry import Registry

    if not os.path.isfile(a.source):
        raise errors.InvalidArgument(f"{a.source} is not a file", field="source")
    imported = (from_ssh_config if a.format == "ssh-config" else from_ansible_inventory)(a.source)
    added, skipped = [], list(imported.skipped)
    with Registry(ctx.home).locked() as registry:
        names = {s.name for s in registry.servers}
        for server in imported.servers:
            if server.name in names and not a.replace:
                skipped.append({"name": server.name, "reason": errors.ServerExists.code})
                continue
            registry.servers = [s for s in registry.servers if s.name != server.name]
            registry.servers.append(server)
            added.append(server.model_dump(mode="json"))
    return _ok({"imported": added, "skipped": skipped})


def _connect(ctx: Context, a: inputs.ConnectInput, call: Call) -> Outcome:
    from sane.fleet.panes import connect_many, ensure_session

    servers = _select(ctx, a.servers, a.tag, a.all)
    ensure_session(ctx)
    reports = connect_many(
        ctx, servers, a.accept_new, a.max_parallel, _per_server(call, len(servers))
    )
    ok = all(r["ok"] for r in reports)
    return _ok(
        {"session": ctx.session_name, "servers": reports},
        errors.EXIT_OK if ok else errors.EXIT_CONNECTION,
    )


def _down(ctx: Context, a: inputs.DownInput, call: Call) -> Outcome:
    from sane.fleet.panes import down

    return _ok({"closed": down(ctx, a.servers or None)})


def _fleet_put(ctx: Context, a: inputs.FleetPutInput, call: Call) -> Outcome:
    from sane.bounded import read_file
    from sane.fleet.run import fleet_put

    data = read_file(a.local_file, "local_file")  # a regular file, bounded
    servers = _select(ctx, a.servers, a.tag, a.all)
    result = fleet_put(
        ctx,
        servers,
        a.remote_path,
        data,
        int(a.mode, 8) if a.mode else None,
        a.parents,
        a.max_parallel,
        a.timeout,
        _per_server(call, len(servers)),
    )
    return _ok(result, errors.EXIT_OK if result["status"] == "completed" else 1)


def _fleet_detect(ctx: Context, a: inputs.FleetDetectInput, call: Call) -> Outcome:
    from sane.fleet.run import fleet_detect

    servers = _select(ctx, a.servers, a.tag, a.all)
    result = fleet_detect(ctx, servers, a.max_parallel, _per_server(call, len(servers)))
    return _ok(result, errors.EXIT_OK if result["status"] == "completed" else 1)


def _health_set(ctx: Context, a: inputs.HealthSetInput, call: Call) -> Outcome:
    import json

    from sane.fleet.health import set_health
    from sane.fleet.registry import Registry

    values: dict[str, Any] = dict(a.fields)
    for key, raw in a.json_fields.items():
        if key in values:
            raise errors.InvalidArgument(f"field {key!r} is given twice", field=key)
        try:
            values[key] = json.loads(raw)
        except ValueError as exc:
            raise errors.InvalidArgument(
                f"json_fields {key}: not JSON ({exc}): {raw!r} (a "
                "string is a field, or quoted JSON)",
                field=key,
            ) from None
    server = Registry(ctx.home).get(a.server)
    return _ok({"server": a.server, "health": set_health(server, a.status, values)})


_RUN_ID = r"r[0-9a-f]{12}"  # compiled by re on first use, not at every CLI start


def run_owner(ctx: Context, run_id: str) -> dict[str, str] | None:
    """Who run ``run_id`` belongs to (a deploy's step), from its record; None if nobody
    (or no record: a run followed inside its first call has none yet; or a record that
    cannot be read, which the interrupt itself then reports)."""
    from sane.ops.run.record import load_record

    if not re.fullmatch(_RUN_ID, run_id):
        return None
    try:
        return load_record(ctx, run_id).get("owner")
    except (OSError, errors.SaneError):
        return None


def validated(model: type[BaseModel], arguments: Mapping[str, Any]) -> Any:
    """``model`` from ``arguments``, or ``invalid_argument`` naming the first bad field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(dict(arguments))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise errors.InvalidArgument(
            f"{field}: {first['msg']}" if field else first["msg"], field=field
        ) from None


Handler = Callable[["Context", Any, Call], Outcome]

HANDLERS: dict[str, Handler] = {
    "run_command": _run_command,
    "run_wait": _run_wait,
    "run_interrupt": _run_interrupt,
    "run_input": _run_input,
    "create_file": _create_file,
    "detect_platform": _detect_platform,
    "list_panes": _list_panes,
    "server_list": _server_list,
    "server_add": _server_add,
    "server_test": _server_test,
    "fleet_run": _fleet_run,
    "health": _health,
    "health_wait": _health_wait,
    "deploy": _deploy,
    "deploy_status": _deploy_status,
    "deploy_list": _deploy_list,
    "deploy_resume": _deploy_resume,
    "deploy_rollback": _deploy_rollback,
    "deploy_plan_check": _deploy_plan_check,
    "read_screen": _read_screen,
    "send_keys": _send_keys,
    "wait_for_text": _wait_for_text,
    "server_show": _server_show,
    "server_pane": _server_pane,
    "server_remove": _server_remove,
    "server_import": _server_import,
    "connect": _connect,
    "down": _down,
    "fleet_put": _fleet_put,
    "fleet_detect": _fleet_detect,
    "health_set": _health_set,
}
"""Tool name -> handler: what ``sane.tools.TOOLS`` and the CLI both call."""


def strict_arguments(model: Any, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A call made against a strict definition (``sane schema --tools openai
    --strict``), as the input model takes it: a null for a field that cannot be null
    means its default, a list of ``{key, value}`` pairs for a map is that map. Other
    calls pass unchanged."""
    fields = model.model_fields
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        info = fields.get(name)
        if info is not None and value is None and not _admits_none(info.annotation):
            continue
        if (
            info is not None
            and isinstance(value, list)
            and _is_map(info.annotation)
            and all(isinstance(p, dict) and set(p) == {"key", "value"} for p in value)
        ):
            value = {p["key"]: p["value"] for p in value}
        out[name] = value
    return out


def _admits_none(annotation: Any) -> bool:
    import types
    import typing

    return annotation is None or (
        typing.get_origin(annotation) in (types.UnionType, typing.Union)
        and type(None) in typing.get_args(annotation)
    )


def _is_map(annotation: Any) -> bool:
    import types
    import typing

    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return any(_is_map(a) for a in typing.get_args(annotation))
    return typing.get_origin(annotation) is dict
