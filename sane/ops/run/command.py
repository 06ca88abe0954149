"""``run_command``: claim the pane, type the command, follow it to its end or hand it over."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sane import errors
from sane.ops.context import Context
from sane.ops.has_input import (
    answers_cleared,
    before_typing,
    check_screen,
    checks_screen,
    forget_replaced_shell,
    note_quiet,
    prompt_after_run,
    refuse,
)
from sane.ops.run import busy
from sane.ops.run.done import note_done
from sane.ops.run.ending import Follow, settle, status_of
from sane.ops.run.follow import StreamSource, follow_run
from sane.ops.run.handover import end_durable, hand_over, make_durable
from sane.ops.run.holder import claim_line, release_line
from sane.ops.run.options import RunOptions, new_run_id
from sane.ops.run.record import RunRecord
from sane.ops.run.result import build_result
from sane.ops.takeover import (
    PaneDied,
    ensure_runner,
    install_runner,
    respawn,
    runner_ready,
    tokens_of,
)
from sane.protocol import markers
from sane.protocol import scanner as sc
from sane.protocol.runner import RunInput
from sane.protocol.runner import run_input as frame_command
from sane.tmux import panes
from sane.tmux.command import quote
from sane.tmux.control import ControlClient, PaneStream

if TYPE_CHECKING:
    from collections.abc import Callable

    from sane.models import RunResult
    from sane.ops.run.quiet import QuietWatch


def run_command(
    ctx: Context,
    command: str,
    pane: str | None = None,
    options: RunOptions | None = None,
    pane_state: panes.PaneState | None = None,
) -> RunResult:
    """Run ``command`` in ``pane`` (default: sane's local pane) and report it exactly.

    ``pane_state``: the pane's state as the caller just read it (a fleet run lists all
    server panes in one tmux call), saving a query per run.
    """
    opts = options or RunOptions()
    errors.refuse_nul("command", command)
    if opts.timeout < 0:
        raise errors.InvalidArgument("timeout must be >= 0", timeout=opts.timeout)
    ctx.sweep_if_grown()
    started_wall = time.time()
    started = time.perf_counter()
    deadline = time.monotonic() + opts.timeout
    known: str | None = None  # the state's text, checked by tmux as the run is typed
    if pane_state is not None:
        state = pane_state
    elif pane is not None:
        state, known = _state_for_run(ctx, pane, opts)
    else:
        state = ctx.default_pane()
    restarted = False
    died = 0
    while True:
        if state.dead:
            state = respawn(ctx, state)
            restarted = True
        try:
            return _run(
                ctx, state, command, opts, deadline, started, started_wall, restarted, known
            )
        except PaneChanged:  # nothing was claimed or typed: read it and go on as usual
            state, known = read_for_run(ctx, state.pane_id), None
        except PaneDied:
            died += 1
            if died == 3:
                raise
            state = ctx.pane_state(state.pane_id)


class PaneChanged(Exception):
    """The pane was not as this process knew it: its state changed, or its screen moved
    from the place kept after the last run (sane.tmux.panes.if_unchanged): nothing was
    claimed or typed; the run starts over from a fresh read."""


def read_for_run(ctx: Context, pane: str) -> panes.PaneState:
    """The pane's state, read; remembered for the next run there (``_state_for_run``)."""
    state, text = ctx.pane_state_text(pane)
    ctx.known_states[state.pane_id] = (state, text, ctx.client(state.session_id))
    return state


def _state_for_run(ctx: Context, pane: str, opts: RunOptions) -> tuple[panes.PaneState, str | None]:
    """The state the run starts from: the one this process read before, if a run could
    be typed into it at once (its text given back: tmux checks it is still the pane's
    state in the command that claims the pane and types, so the read is saved), else
    read now (no text)."""
    known = ctx.known_states.get(pane)
    if known is not None:
        state, text, client = known
        if (
            types_at_once(state, opts)
            and state.busy_flag is None
            and not state.shell_new
            and panes.comparable(text)
            and client.alive  # the same tmux server (a new one gives %0 again)
            and ctx.hub.attached(state.session_id)
        ):
            return state, text
    return read_for_run(ctx, pane), None


def _run(
    ctx: Context,
    state: panes.PaneState,
    command: str,
    opts: RunOptions,
    deadline: float,
    started: float,
    started_wall: float,
    restarted: bool = False,
    known: str | None = None,
) -> RunResult:
    """``known``: ``state`` was not read for this run, it is the text of one read
    before; the line that claims and types checks it (or raises PaneChanged)."""
    client = ctx.client(state.session_id)
    pane_id = state.pane_id
    run_id = opts.run_id or new_run_id()
    stream = client.watch(pane_id)
    try:
        claim: str | None = claim_line(pane_id, busy.mine(ctx, run_id))
        rec = new_record(ctx, state, command, opts, run_id, started_wall, restarted)
        if state.shell_new:  # said once: by this run
            client.command(f"set-option -p -u -t {pane_id} {panes.OPT_SHELL_NEW}")

        def start() -> tuple[panes.PaneState, sc.RunScanner, Follow]:
            ready, line = state, claim
            if not types_at_once(ready, opts):
                busy.claim(ctx, client, ready, run_id)
                line = None
                ready = ensure_runner(ctx, client, stream, ready, opts.clear_input)
            # Its command line, from the screen; unless the pane printed nothing since
            # the prompt this client saw drawn after its last run, and tmux, as it types,
            # finds the screen where it was then (same_place: this client's reader may
            # lag behind tmux, and a person's text, its echo not read yet, is on the
            # screen; seen under load: the person's `echo PERSON-RAN #` ran).
            screen_checked = checks_screen(ready)
            same_place = screen_checked and line is not None and client.quiet(pane_id)
            if screen_checked and not same_place:
                if known is not None:  # the look claims: on a state read, not recalled
                    raise PaneChanged
                try:  # the claim in the same tmux line as the look at the screen
                    check_screen(client, stream, ready, opts.clear_input, line)
                except errors.TmuxError as exc:
                    if line is None or "already set" not in exc.message:
                        raise
                    busy.claim(ctx, client, ready, run_id)  # stale flag cleared, or PaneBusy
                    check_screen(client, stream, ready, opts.clear_input)
                line = None
            check = panes.Unchanged(known, same_place) if known is not None or same_place else None
            scanner, follow = start_and_follow(
                ctx, client, stream, ready, command, deadline, line, rec, opts, check=check
            )
            return ready, scanner, follow

        return conclude(ctx, client, stream, state, rec, opts, started, start)
    finally:
        client.unwatch(pane_id, stream)


def types_at_once(state: panes.PaneState, opts: RunOptions) -> bool:
    """Can the run's line go to tmux with its claim, nothing asked or done first? Not
    without the shell's runner (or with a shell of another kind started over it), in
    a dead pane, one in a mode (copy mode, a person scrolling), or for a durable run,
    whose record and recording come before any key."""
    return runner_ready(state) and not state.dead and not state.in_mode and not opts.durable


def framed(
    nonce: str, command: str, state: panes.PaneState, opts: RunOptions, force_paste: bool = False
) -> tuple[sc.RunScanner, RunInput]:
    """The scanner reading a run's output and the input typing it, for this pane's shell."""
    scanner = sc.RunScanner(nonce, tokens_of(state), state.shell_kind)
    return scanner, frame_command(nonce, command, force_paste, state.shell_kind, opts.posix_script)


def new_record(
    ctx: Context,
    state: panes.PaneState,
    command: str,
    opts: RunOptions,
    run_id: str,
    started_wall: float,
    restarted: bool = False,
) -> RunRecord:
    """The run's record as it starts (saved to a file only if it is handed over)."""
    return {
        "run_id": run_id,
        "pane": state.pane_id,
        "session_id": state.session_id,
        "socket": ctx.server.label,
        "command": command,
        "nonce": "",
        "tokens": [],
        "started": started_wall,
        "owner": opts.owner,
        "keep_ansi": opts.keep_ansi,
        "max_output": opts.max_output,
        "returned": 0,
        "raw_returned": 0,
        # The shell is not the one sane's earlier runs in this pane used: respawned
        # after it died, or its runner gone (a new shell exec'd in its place).
        "shell_restarted": restarted
        or state.shell_new
        or (state.token is not None and not state.runner_installed),
    }


def conclude(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    state: panes.PaneState,
    rec: RunRecord,
    opts: RunOptions,
    started: float,
    start: Callable[[], tuple[panes.PaneState, sc.RunScanner, Follow]],
    hold: bool = False,
) -> RunResult:
    """``start`` the run (claim, type, follow: or go on following one already typed,
    as a fleet's one follower hands it over) and end it: its result, the busy flag
    released, or the run handed over. One definition for a run followed by its own
    thread and for one a fleet's loop follows. ``hold``: the run's last tmux line (the
    release and its note; nothing waits for its answer) waits for the client's next
    write (``ControlClient.send``): a fleet's loop writes those of the runs it ended
    within ``RELEASE_GATHER`` of each other together."""
    pane_id = state.pane_id
    mine = busy.mine(ctx, rec["run_id"]).value
    try:
        state, scanner, follow = start()
    except (errors.PaneBusy, PaneChanged, errors.Detached):
        raise  # Detached: nothing may be decided or written for the run here
    except KeyboardInterrupt:
        # Ctrl-C (SIGINT) while this process follows the run: a durable run keeps its
        # record, pipe and flag, so another process resumes it (a deploy's step is
        # recovered, not lost); it is not this process's to end.
        if not (opts.durable and rec.get("durable")):
            busy.release(client, pane_id, mine)
        raise
    except BaseException:
        if opts.durable:
            end_durable(ctx, client, rec)
        busy.release(client, pane_id, mine)  # ours only: the claim may have failed
        raise
    rec["nonce"], rec["tokens"] = scanner.nonce, sorted(scanner.tokens)
    rec["shell"] = scanner.shell
    interrupted = False
    stopped = opts.stop is not None and opts.stop.is_set()
    if follow.kind == "timeout" and opts.interrupt_on_timeout and not stopped:
        interrupted = True
        follow = _interrupt(ctx, client, pane_id, stream, scanner, opts.interrupt_grace)
    if follow.kind == "cancelled":
        raise errors.HandedOver(hand_over(ctx, client, stream, scanner, rec, started))
    if follow.kind == "released":
        return ended_elsewhere(ctx, rec)
    if follow.kind in ("timeout", "waiting"):
        unread = stopped and opts.unread is not None and opts.unread.is_set()
        return hand_over(ctx, client, stream, scanner, rec, started, follow.waiting, unread)
    status, code, exited = status_of(follow, scanner, interrupted)
    drawn: list[str] = []
    result: RunResult | None = None
    try:  # from here on the run is over: whatever fails, its flag goes (finally)
        settle(ctx, client, pane_id, scanner)
        drawn = _prompt_after(stream, scanner, state, exited)
        cleared = [] if exited else answers_cleared(client, stream, scanner, state)
        drawn += cleared  # tmux's answers to its queries: not typed text
        if not cleared and drawn and checks_screen(state):
            drawn += note_quiet(client, stream, scanner, pane_id)
        duration_ms = (time.perf_counter() - started) * 1000
        if opts.durable:
            end_durable(
                ctx,
                client,
                rec,
                {
                    "status": status,
                    "exit_code": code,
                    "shell_exited": exited,
                    "duration_ms": round(duration_ms, 3),
                },
            )
        result = build_result(ctx, rec, scanner, status, code, exited, duration_ms)
    finally:  # the run ended: its flag goes, whatever recording it did
        client.send(
            release_line(pane_id), *note_done(pane_id, result), *drawn, hold=hold
        )  # ours: it ran; answered at close
    return result


ENDING_SAVED = 5.0


def _with_final(rec: RunRecord) -> RunRecord | None:
    return rec if rec.get("final") is not None else None


def ended_elsewhere(ctx: Context, rec: RunRecord) -> RunResult:
    """A durable run another process ended and recorded (see ``follow_run``'s
    ``owned``): its ending as that process saved it, with all of its output (this call
    returned none of it). The flag and the pipe are that process's to have cleared."""
    from sane.ops.run.record import load_record, replay
    from sane.poll import poll

    # That process releases the flag a moment before it saves the ending.
    saved = poll(lambda: _with_final(load_record(ctx, rec["run_id"])), ENDING_SAVED)
    if saved is None:  # released, no ending saved (that process died): unknown
        return build_result(ctx, rec, sc.RunScanner(rec["nonce"], []), "lost", None, False, 0.0)
    final = saved["final"]
    assert final is not None
    saved["returned"] = saved["raw_returned"] = 0
    scanner, _, _ = replay(ctx, saved)
    return build_result(
        ctx,
        saved,
        scanner,
        final["status"],
        final["exit_code"],
        final["shell_exited"],
        final["duration_ms"],
    )


def start_and_follow(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    state: panes.PaneState,
    command: str,
    deadline: float,
    claim: str | None,
    rec: RunRecord,
    opts: RunOptions,
    typed: tuple[sc.RunScanner, Follow | None] | None = None,
    watch: QuietWatch | None = None,
    check: panes.Unchanged | None = None,
) -> tuple[sc.RunScanner, Follow]:
    """Type the run's line (with ``claim``, in the same tmux line) and follow it to its
    outcome, typing it again where the shell needs another form. ``typed``: the line
    was typed already (a fleet's loop typed it and followed it so far: its scanner,
    and how following it ended if it did; ``watch`` its quiet watch): go on from there.
    ``check``: what tmux checks is still so as it takes the first line
    (``run_command``: the state read before this run, the screen's place)."""
    run_id = rec["run_id"]
    durable = rec if opts.durable else None
    force_paste = False
    reinstalled = False
    while True:
        follow: Follow | None = None
        if typed is not None:
            (scanner, follow), typed = typed, None
        else:
            state, scanner = _type(
                ctx, client, stream, state, command, claim, rec, opts, force_paste, check
            )
            watch = None
        claim = check = None
        if follow is None:
            try:
                follow = follow_run(
                    ctx,
                    client,
                    state.pane_id,
                    StreamSource(stream),
                    scanner,
                    deadline,
                    opts.on_output,
                    opts.quiet_period,
                    opts.stop,
                    True if state.server is not None else None,  # a server's pane: ssh
                    run_id if durable is not None else None,
                    watch,
                )
            except KeyboardInterrupt:
                # Ctrl-C with the command typed (a second one, or one where no soft stop is
                # armed): it may be running, so its flag must not be cleared; _run hands
                # the run over (resumable, the pane busy with it) and re-raises.
                return scanner, Follow("cancelled")
        outcome = scanner.outcome
        if follow.kind != "outcome" or outcome is None:
            return scanner, follow
        if outcome.kind == sc.OUTCOME_MISSING_RUNNER and not reinstalled:
            # Another shell runs inside the pane (a nested shell, ssh): install there.
            reinstalled = True
            state = install_runner(ctx, client, stream, state.pane_id, clear_input=opts.clear_input)
            rec["shell_restarted"] = True
            continue
        if outcome.kind == sc.OUTCOME_HELD:
            refuse(client, stream, scanner, state.pane_id)
        if outcome.kind == sc.OUTCOME_LENGTH_MISMATCH and not force_paste:
            force_paste = True  # the shell truncated the typed line: use a heredoc
            continue
        if outcome.kind in (
            sc.OUTCOME_MISSING_RUNNER,
            sc.OUTCOME_LENGTH_MISMATCH,
            sc.OUTCOME_DECODE_FAILED,
        ):
            raise errors.RunnerUnavailable(
                f"the shell in pane {state.pane_id} could not run the command "
                f"({outcome.kind.replace('_', ' ')})",
                pane=state.pane_id,
                reason=outcome.kind,
            )
        return scanner, follow


def _type(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    state: panes.PaneState,
    command: str,
    claim: str | None,
    rec: RunRecord,
    opts: RunOptions,
    force_paste: bool,
    check: panes.Unchanged | None = None,
) -> tuple[panes.PaneState, sc.RunScanner]:
    """Type the run's line; the pane's state and the run's scanner. A claim refused
    ("already set": a stale flag, or a busy pane) is settled by ``busy.claim`` (or
    PaneBusy) and the line typed alone. A stop already set (a Ctrl-C, a cancelled
    call) types nothing: NotStarted (the caller releases a claim it holds). ``check``:
    checked by tmux in the same tmux command (PaneChanged if the pane is not so any
    more: nothing done)."""
    refuse_stopped(opts)
    nonce = markers.new_nonce()
    scanner, typed = framed(nonce, command, state, opts, force_paste)
    if opts.durable:
        make_durable(ctx, client, state, rec, scanner)
    before = before_typing(state, opts.clear_input)
    try:
        _send(client, state.pane_id, typed, nonce, claim, before, check)
    except (errors.TmuxError, errors.PaneNotFound) as exc:
        if check is not None and panes.state_changed(exc):
            raise PaneChanged from exc
        if claim is None or isinstance(exc, errors.PaneNotFound):
            raise
        state = claim_refused(ctx, client, stream, state, rec["run_id"], exc)
        scanner, typed = framed(nonce, command, state, opts, force_paste)
        _send(client, state.pane_id, typed, nonce, None, before_typing(state, opts.clear_input))
    return state, scanner


def refuse_stopped(opts: RunOptions) -> None:
    """Checked in the thread that types, just before its line goes to tmux: a stop seen
    set is never followed by a typed line (one set a moment later finds the run typed
    and hands it over, as it says)."""
    if opts.stop is not None and opts.stop.is_set():
        raise errors.NotStarted(
            "stopped before the command was typed: nothing ran", reason="cancelled"
        )


def claim_refused(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    state: panes.PaneState,
    run_id: str,
    exc: errors.TmuxError,
) -> panes.PaneState:
    """The line with the claim failed: unless tmux refused the claim itself ("already
    set": a stale flag, or a busy pane) that is the run's error. Else ``busy.claim``
    clears a stale flag and claims (or raises PaneBusy); the pane's state then, its
    runner ready, for typing the line alone."""
    if "already set" not in exc.message:
        raise exc
    busy.claim(ctx, client, state, run_id)
    return ensure_runner(ctx, client, stream, ctx.pane_state(state.pane_id))


def _send(
    client: ControlClient,
    pane_id: str,
    typed: RunInput,
    nonce: str,
    claim: str | None,
    before: str = "",
    check: panes.Unchanged | None = None,
) -> None:
    commands = typing_line(pane_id, typed, nonce, claim, before)
    if check is None:
        client.command(*commands)
        return
    guarded = panes.if_unchanged(pane_id, check, commands)
    if guarded is None:  # not a text tmux can compare: read the state instead
        raise PaneChanged
    client.command(guarded[0], blocks=guarded[1])


# What tmux types for the key Enter: a typed line ends with it (typing_line).
ENTER = "\r"


def typing_line(
    pane_id: str,
    typed: RunInput,
    nonce: str,
    claim: str | None,
    before: str = "",
) -> list[str]:
    """The tmux commands typing the run's input; with ``claim``, in the same tmux line
    as the claim, so a pane that is busy never receives a keystroke. ``before``: the
    keys that must precede it, as characters (sane.ops.has_input.before_typing).

    A typed line goes with them and its Enter (``\\r``, what tmux sends for Enter)
    in one ``send-keys -l``: the same keys, in the same order, as a ``send-keys`` of
    each, for one tmux command (each costs tmux a command of its own, a reply block
    and an after-hook lookup, and it grows with the panes tmux holds: issue 17)."""
    first = [claim] if claim is not None else []
    # `copy-mode -q` (a no-op unless the pane is in a mode) in the same line: a person
    # scrolling back in the pane a moment ago must not receive the keys.
    first.append(f"copy-mode -q -t {pane_id}")
    if typed.kind == "keys":
        return [*first, f"send-keys -t {pane_id} -l -- {quote(before + typed.text + ENTER)}"]
    if before:
        first.append(f"send-keys -t {pane_id} -l -- {quote(before)}")
    buffer = f"sane-{nonce}"
    return [
        *first,
        f"set-buffer -b {buffer} {quote(typed.text)}",
        f"paste-buffer -d -b {buffer} -t {pane_id}",
    ]


def _prompt_after(
    stream: PaneStream, scanner: sc.RunScanner, state: panes.PaneState, exited: bool
) -> list[str]:
    """For a shell checked by its screen (sane.ops.has_input): the command keeping the
    prompt drawn after the run, which the next run's check compares against. For any
    shell, one the run replaced (``exec bash``) is forgotten."""
    if scanner.outcome is not None and scanner.outcome.kind == sc.OUTCOME_REPLACED:
        return forget_replaced_shell(state.pane_id)
    if not checks_screen(state) or exited or scanner.final is None:
        return []
    return prompt_after_run(stream, scanner, state.pane_id)


def _interrupt(
    ctx: Context,
    client: ControlClient,
    pane_id: str,
    stream: PaneStream,
    scanner: sc.RunScanner,
    grace: float,
) -> Follow:
    scanner.feed(stream.take(0))
    scanner.mark_interrupt()
    client.command(f"send-keys -t {pane_id} C-c")
    deadline = time.monotonic() + grace
    source = StreamSource(stream)
    from sane.ops.run.quiet import QuietWatch  # its probes' imports: only when quiet

    watch = QuietWatch.after_interrupt(client, pane_id)
    return follow_run(ctx, client, pane_id, source, scanner, deadline, watch=watch)
