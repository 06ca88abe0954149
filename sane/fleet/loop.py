"""A fleet run's warm servers, followed by one thread (issue 17: linear cost).

Before, every server of a fleet run had a thread of its own, blocked in its own follow
loop: 200 servers were 200 threads each woken by every piece of its pane's output and
every quarter second, and what was left of sane's cost per server was the GIL and
those wake-ups (``lock.acquire`` the largest item of the workers' CPU). Here the
calling thread types every warm server's line without waiting for tmux's answer (the
claim stays in the same tmux line, so a busy pane still never gets a key), then
sleeps on one :class:`_Wakeup` that the control client's reader pokes with the
streams that got output and the replies that came, and feeds each run's scanner what
arrived. A run that ends the common way (its end marker: completed or interrupted)
is finished right there: its result built, its flag released, no thread.

Everything else a run can need blocks on tmux or ssh (a refused claim, a quiet run's
prompt probe, a dead pane, the deadline's hand-over, the shell's exit, a runner to
install): such a run is handed, with its scanner and quiet watch, to a worker thread
that goes on exactly as ``run_command`` would (``command.start_and_follow`` and
``command.conclude``: one definition of a run's lifecycle). Servers whose pane is not
warm (cold, dead, a screen-checked shell, a new shell) go to a worker from the start,
through the caller's own path. ``max_parallel`` counts all of them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sane import errors
from sane.ops.has_input import before_typing, checks_screen
from sane.ops.run import busy
from sane.ops.run.command import (
    claim_refused,
    conclude,
    framed,
    new_record,
    run_command,
    start_and_follow,
    types_at_once,
    typing_line,
)
from sane.ops.run.ending import Follow
from sane.ops.run.holder import claim_line
from sane.ops.run.liveness import LIVENESS_INTERVAL, liveness_of
from sane.ops.run.options import RunOptions, new_run_id
from sane.ops.run.quiet import QuietWatch
from sane.ops.takeover import PaneDied
from sane.parallel import spawn
from sane.protocol import markers
from sane.protocol import scanner as sc
from sane.tmux import panes
from sane.tmux.control import ControlClient, PaneStream, Reply

if TYPE_CHECKING:
    from sane.models import RunResult
    from sane.ops.context import Context

# Outcomes the loop ends a run on by itself; any other goes on in a worker thread.
_PLAIN = (sc.OUTCOME_COMPLETED, sc.OUTCOME_ABORTED)

# How long the release lines of runs the loop ended wait for those of runs ending just
# after them, to go to tmux in one write: each line tmux reads alone costs it a turn of
# its event loop, O(panes) (~0.15 ms at 200 panes, ~1-1.5 ms at 1,000:
# bench_tmux_costs.py --per-line 1), and the ends of a fleet's `sleep 1` come spread
# over a few hundred ms, one or two per wake-up. A pane stays flagged this much longer
# at most; any other write to its control client, by any thread, takes them along.
RELEASE_GATHER = 0.02


def warm(state: panes.PaneState | None, opts: RunOptions) -> bool:
    """Can the loop type a run into this pane with nothing asked first (what
    ``command._run`` would do without a tmux round trip before its claim-and-type)?"""
    return (
        state is not None
        and types_at_once(state, opts)
        and not state.shell_new
        and not checks_screen(state)
    )


class Flight:
    """One server's run typed by the loop and followed by it until it ends or needs a
    thread. ``report`` gets its result; ``wrap`` turns the run's result (or error)
    into the server's report."""

    def __init__(
        self,
        ctx: Context,
        index: int,
        state: panes.PaneState,
        command: str,
        opts: RunOptions,
        wake: _Wakeup,
    ) -> None:
        self.ctx = ctx
        self.index = index
        self.state = state
        self.command = command
        self.opts = opts
        self.started = time.perf_counter()
        self.deadline = time.monotonic() + opts.timeout
        self.client: ControlClient = ctx.client(state.session_id)
        self.rec = new_record(ctx, state, command, opts, opts.run_id or new_run_id(), time.time())
        nonce = markers.new_nonce()
        self.scanner, typed = framed(nonce, command, state, opts)
        claim = claim_line(state.pane_id, busy.mine(ctx, self.rec["run_id"]))
        line = typing_line(
            state.pane_id, typed, nonce, claim, before_typing(state, opts.clear_input)
        )
        remote = True if state.server is not None else None  # a server's pane: ssh
        self.watch = QuietWatch(self.client, state.pane_id, opts.quiet_period, remote)
        self.stream = self.client.watch(state.pane_id)  # before the line is sent
        self.stream.waker = wake.stream
        if isinstance(opts.stop, RunStop):  # a take-over of this run: the loop looks
            opts.stop.on_set = lambda: wake.stream(self.stream)
        # Sent by the loop with the other lines of its wave, in one write (send_all).
        self.line = line
        self.typed_at = math.inf
        self.reply = Reply("")

    @staticmethod
    def send_all(flights: Sequence[Flight], wake: _Wakeup) -> None:
        """Every flight's claim-and-type line, one write per control client (tmux reads
        them at once: a turn of its event loop per line written alone costs it a poll
        of every pane and a pass over them all, O(N) per line at N panes)."""
        by_client: dict[ControlClient, list[Flight]] = {}
        for flight in flights:
            by_client.setdefault(flight.client, []).append(flight)
        for client, group in by_client.items():
            # Whatever interrupts the queueing (a Ctrl-C lands anywhere), what was
            # queued goes out, and its flights count as typed (followed, never left
            # held for another thread's next write to type behind the loop's back).
            try:
                for flight in group:
                    flight.reply = client.send(*flight.line, notify=wake.reply, hold=True)
                    flight.typed_at = time.monotonic()
            finally:
                client.flush()

    def feed(self) -> bool:
        """Take the stream's news; True once the run's outcome is known."""
        data = self.stream.take(0)
        if data:
            self.watch.output()
            if self.scanner.feed(data) is not None:
                return True
            if self.opts.on_output is not None:
                self.opts.on_output(self.client, self.state.pane_id, self.scanner)
        return False

    def due(self, now: float) -> float:
        """When the run's next step needs a thread unless news comes first: its
        deadline, or the quiet watch's probe. Output only ever moves it later."""
        return min(self.deadline, now + self.watch.wait_time(now))

    def stuck(self) -> bool:
        """After news without an outcome: does the next step need a thread (the
        control client gone, the shell's exit to acknowledge)?"""
        return self.stream.closed or self.scanner.exit_pending()

    def finish(self, follow: Follow | None, hold: bool = False) -> RunResult:
        """Go on as ``run_command`` would from here, and end the run (blocking; inline
        only for a plain outcome, whose ending sends tmux one line and waits for none:
        with ``hold``, it waits for the client's next write, see ``conclude``)."""
        ctx, client, stream, state, opts = self.ctx, self.client, self.stream, self.state, self.opts
        deadline = self.deadline

        def start() -> tuple[panes.PaneState, sc.RunScanner, Follow]:
            try:  # the claim-and-type line's answer, as command._type waits for it
                client.result(self.reply)
            except errors.TmuxError as exc:  # nothing was typed
                ready = claim_refused(ctx, client, stream, state, self.rec["run_id"], exc)
                scanner, ended = start_and_follow(
                    ctx, client, stream, ready, self.command, deadline, None, self.rec, opts
                )
                return ready, scanner, ended
            typed = (self.scanner, follow)
            scanner, ended = start_and_follow(
                ctx,
                client,
                stream,
                state,
                self.command,
                deadline,
                None,
                self.rec,
                opts,
                typed,
                self.watch,
            )
            return state, scanner, ended

        try:
            return conclude(ctx, client, stream, state, self.rec, opts, self.started, start, hold)
        except PaneDied:  # as run_command: the pane asked again, the run from the start
            remaining = max(0.0, deadline - time.monotonic())
            return run_command(
                ctx, self.command, pane=state.pane_id, options=opts._replace(timeout=remaining)
            )
        finally:
            client.unwatch(state.pane_id, stream)
            stream.waker = None


class RunStop(threading.Event):
    """One server's run's own stop inside a fleet run: set alone by a take-over of that
    run (``run_wait``/``run_interrupt``/``run_input`` of its id while the fleet run
    follows it), so only that run is handed over and the others go on; it also reads as
    set once the fleet run's own ``stop`` is (a Ctrl-C, the call's cancellation).

    Read with ``is_set`` only, as every follower does (``wait`` would not see the fleet
    run's stop). ``on_set``: the fleet loop following the run, poked to look at once."""

    def __init__(self, fleet: threading.Event | None) -> None:
        super().__init__()
        self.fleet = fleet
        self.on_set: Callable[[], None] | None = None

    def is_set(self) -> bool:
        return super().is_set() or (self.fleet is not None and self.fleet.is_set())

    def set(self) -> None:
        super().set()
        poke = self.on_set
        if poke is not None:
            poke()


class _Wakeup:
    """What the loop sleeps on: streams with news and replies that came (poked by the
    control client's reader), and work done by threads (poked by them)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._streams: set[PaneStream] = set()
        self._replies: list[Reply] = []
        self._done: list[tuple[int, dict[str, Any] | BaseException]] = []

    def stream(self, stream: PaneStream) -> None:
        with self._cond:
            self._streams.add(stream)
            self._cond.notify()

    def reply(self, reply: Reply) -> None:
        with self._cond:
            self._replies.append(reply)
            self._cond.notify()

    def done(self, index: int, report: dict[str, Any] | BaseException) -> None:
        with self._cond:
            self._done.append((index, report))
            self._cond.notify()

    def wait(
        self, timeout: float
    ) -> tuple[set[PaneStream], list[Reply], list[tuple[int, dict[str, Any] | BaseException]]]:
        with self._cond:
            if not (self._streams or self._replies or self._done) and timeout > 0:
                self._cond.wait(timeout)
            news = self._streams, self._replies, self._done
            self._streams, self._replies, self._done = set(), [], []
            return news


Report = dict[str, Any]
Wrap = Callable[["RunResult | errors.SaneError"], Report]


def run_fleet(
    ctx: Context,
    states: Sequence[panes.PaneState | None],
    command: str,
    options: RunOptions,
    max_parallel: int,
    begin: Callable[[int], tuple[RunOptions, Wrap]],
    slow: Callable[[int], Report],
    not_started: Callable[[int], Report],
) -> list[Report]:
    """Each index's report, in order. An index whose pane ``states[i]`` is :func:`warm`
    for ``options`` has its run typed and followed here: ``begin(i)``, called as it
    starts, gives the run's own options (its timeout counts from then) and the wrapper
    making its result (or error) the report. Any other index is ``slow(i)``, in a
    worker thread. At most ``max_parallel`` at once. Once ``options.stop`` is set, no
    index starts: each left is ``not_started(i)`` (this thread types every warm line
    and looks at the stop just before each, so none is typed after the stop was seen;
    a slow one's thread looks just before its own, in ``command._type``). As with
    ``bounded_map``, an exception other than a SaneError is raised once every index
    has finished."""
    wake = _Wakeup()
    reports: list[Report | None] = [None] * len(states)
    failures: list[BaseException] = []
    flights: dict[PaneStream, Flight] = {}
    wraps: dict[int, Wrap] = {}
    by_reply: dict[int, Flight] = {}
    queue = iter(range(len(states)))
    running = 0  # in the loop or in a thread
    liveness = liveness_of(ctx, LIVENESS_INTERVAL)
    last_check = time.monotonic()
    next_scan = math.inf  # no run's deadline or probe is due before this
    # Control clients holding release lines, and since when (RELEASE_GATHER).
    held: dict[ControlClient, float] = {}

    def land(flight: Flight, follow: Follow | None, hold: bool = False) -> Callable[[], Report]:
        """The flight leaves the loop: what ends it and makes its report."""
        del flights[flight.stream]
        by_reply.pop(id(flight.reply), None)
        wrap = wraps.pop(flight.index)

        def end() -> Report:
            try:
                return wrap(flight.finish(follow, hold))
            except errors.SaneError as exc:
                return wrap(exc)

        return end

    def untyped(flight: Flight) -> None:
        """A flight whose line was never sent leaves the loop: nothing was typed."""
        del flights[flight.stream]
        wraps.pop(flight.index, None)
        flight.stream.waker = None
        flight.client.unwatch(flight.state.pane_id, flight.stream)

    def to_thread(flight: Flight, follow: Follow | None) -> None:
        end = land(flight, follow)
        spawn(lambda: wake.done(flight.index, _caught(end)))

    def slow_job(index: int) -> None:
        spawn(lambda: wake.done(index, _caught(lambda: slow(index))))

    def done(index: int, report: Report | BaseException) -> None:
        nonlocal running
        running -= 1
        if isinstance(report, BaseException):
            failures.append(report)
        else:
            reports[index] = report

    try:
        while True:
            wave: list[Flight] = []
            while running < max_parallel:
                index = next(queue, None)
                if index is None:
                    break
                if options.stop is not None and options.stop.is_set():
                    reports[index] = not_started(index)
                    continue
                running += 1
                state = states[index]
                if state is None or not warm(state, options):
                    slow_job(index)
                    continue
                opts, wrap = begin(index)
                wraps[index] = wrap
                try:
                    flight = Flight(ctx, index, state, command, opts, wake)
                except errors.SaneError as exc:  # no control client for its session
                    del wraps[index]
                    done(index, wrap(exc))
                    continue
                flights[flight.stream] = flight
                wave.append(flight)
            if wave and options.stop is not None and options.stop.is_set():
                for flight in wave:  # the stop came before their lines went: none typed
                    untyped(flight)
                    running -= 1
                    reports[flight.index] = not_started(flight.index)
            elif wave:
                Flight.send_all(wave, wake)
                for flight in wave:
                    by_reply[id(flight.reply)] = flight
                    next_scan = min(next_scan, flight.due(flight.typed_at))
                    if flight.reply.done.is_set():
                        wake.reply(flight.reply)
            if not running:
                break
            now = time.monotonic()
            timeout = min(last_check + LIVENESS_INTERVAL, next_scan) - now
            if held:
                timeout = min(timeout, min(held.values()) + RELEASE_GATHER - now)
            streams, replies, finished = wake.wait(max(0.0, timeout))
            for index, report in finished:
                done(index, report)
            for reply in replies:
                refused = by_reply.get(id(reply))
                if refused is not None and reply.error:
                    to_thread(refused, None)  # the claim was refused, or the line failed
            # The last lines of the runs ended here, written together (Flight.send_all)
            # and with those of runs ending within RELEASE_GATHER after them.
            try:
                for stream in streams:
                    fed = flights.get(stream)
                    if fed is None or fed.reply.error:
                        continue
                    if fed.opts.stop is not None and fed.opts.stop.is_set():
                        to_thread(fed, None)  # taken over: it hands its run over at once
                        continue
                    if not fed.feed():
                        if fed.stuck():
                            to_thread(fed, None)
                        continue
                    outcome = fed.scanner.outcome
                    if outcome is not None and outcome.kind in _PLAIN:
                        # Ended here: its end sends tmux one line and waits for no answer.
                        # An unexpected failure is kept and raised once every run ended.
                        held.setdefault(fed.client, time.monotonic())
                        done(fed.index, _caught(land(fed, Follow("outcome"), hold=True)))
                    else:
                        to_thread(fed, Follow("outcome"))
            finally:
                now = time.monotonic()
                for client, since in list(held.items()):
                    if not flights or now - since >= RELEASE_GATHER:
                        del held[client]
                        client.flush()
            now = time.monotonic()
            if options.stop is not None and options.stop.is_set():
                for flight in list(flights.values()):
                    to_thread(flight, None)  # each hands its run over at once
            elif now >= next_scan:
                # Only when the earliest deadline or probe may be due: a look at every
                # run per wake-up cost O(N) each, O(N^2) per fleet run.
                next_scan = math.inf
                for flight in list(flights.values()):
                    due = flight.due(now)
                    if due <= now:
                        to_thread(flight, None)
                    else:
                        next_scan = min(next_scan, due)
            if now - last_check >= LIVENESS_INTERVAL:
                last_check = now
                # Runs quiet for a while: one listing answers whether their panes
                # live; one it does not show alive goes to a thread that asks.
                quiet = [f for f in flights.values() if now - f.typed_at >= LIVENESS_INTERVAL]
                for flight in quiet:
                    if liveness.maybe_dead(flight.state.pane_id, ctx.tmux):
                        to_thread(flight, None)
    except BaseException:
        # Ctrl-C or a failure of the loop itself: the runs typed go on in threads, as
        # they would have in their own threads (each hands over at its stop or deadline).
        for flight in list(flights.values()):
            if flight.typed_at == math.inf:
                untyped(flight)  # its line was never sent
            else:
                to_thread(flight, None)
        raise
    finally:
        for client in held:  # every release goes before the call returns
            client.flush()
    if failures:
        raise failures[0]
    return reports  # type: ignore[return-value]  # every index was reported


def _caught(work: Callable[[], Report]) -> Report | BaseException:
    """``work``'s report, or what it raised (for the loop to raise at the end)."""
    try:
        return work()
    except BaseException as exc:  # handed to the loop, raised at its end
        return exc
