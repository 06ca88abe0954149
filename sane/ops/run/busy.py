"""The pane's busy flag (the ``@sane_run`` pane option): claim, release, staleness.

The flag's value is a :class:`sane.ops.run.holder.Holder`; whether a flag is left over
from a run that is provably over is decided from the owner's own record.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from sane import errors
from sane.ops.context import Context
from sane.ops.has_input import Ended, checks_screen, clear_answers_left, prompt_after_run
from sane.ops.run.done import note_done
from sane.ops.run.ending import acknowledge_exit
from sane.ops.run.holder import Holder, claim_line, release_line, run_of
from sane.ops.run.pipe import unpipe
from sane.ops.run.record import RunRecord, load_record, replay, run_finished, runs_dir
from sane.protocol import scanner as sc
from sane.tmux import panes
from sane.tmux.control import ControlClient

if TYPE_CHECKING:
    from pathlib import Path

    from sane.models import RunResult


def mine(ctx: Context, run_id: str) -> Holder:
    return Holder.mine(run_id, ctx.home_dir)


def claim(ctx: Context, client: ControlClient, state: panes.PaneState, run_id: str) -> None:
    """Set the pane's busy flag to this run, clearing it first if it is left over from a
    run that is provably over; else ``pane_busy`` naming the run that holds it."""
    line = claim_line(state.pane_id, mine(ctx, run_id))
    if _set_unless_held(client, line):
        return
    holder = ctx.pane_state(state.pane_id).busy_flag
    is_stale = holder is not None and stale(ctx, holder)
    orphan = False
    if holder is not None and is_stale:
        if has_record(ctx, holder):
            # The run ended with nobody waiting: the prompt drawn after it is in its
            # stream (the pipe was still on), and the screen check needs it.
            keep = prompt_left(ctx, holder, state.pane_id) if checks_screen(state) else []
            client.command(*keep, *unpipe(state.pane_id))
            if left_shell_exiting(ctx, holder):
                acknowledge_exit(ctx, client, state.pane_id)
            else:
                replayed = _replayed(ctx, holder)
                if replayed is not None:
                    clear_answers_left(client, state, replayed[1])
        else:
            orphan = not _orphan_settled(client, state.pane_id)
    elif holder is not None and _ended_unrecorded(ctx, client, state, holder):
        is_stale = True  # run_wait has ended its record (lost) and released its flag
    if holder is not None and is_stale and not orphan:
        release(client, state.pane_id, holder)
        if _set_unless_held(client, line):
            return
        holder = ctx.pane_state(state.pane_id).busy_flag
    busy_id = run_of(holder)
    if orphan:
        raise errors.PaneBusy(
            f"pane {state.pane_id} is still running the command of run {busy_id}, whose "
            "sane process died before recording it: try again once it ends",
            pane=state.pane_id,
            run_id=busy_id,
            owner_died=True,
        )
    raise errors.PaneBusy(
        f"pane {state.pane_id} is running another command (run {busy_id}); "
        "wait for it (sane run wait) or interrupt it (sane run interrupt)",
        pane=state.pane_id,
        run_id=busy_id,
    )


ORPHAN_SETTLE_SECONDS = 5.0
# How long a command of a run whose process died unrecorded, neither waiting for input
# nor over, is watched for one of the two before the pane is refused (pane_busy).
ORPHAN_RUNNING_SECONDS = 3.0


def _orphan_settled(client: ControlClient, pane_id: str) -> bool:
    """May a run take a pane whose flag names a run that died unrecorded (its process
    was killed inside its first call)? That the process is gone does not prove its
    command is: typed into, a command still running (or create-file's script waiting
    for its content) took the next run's line as its input. So: yes once the kernel
    shows the shell back at its own prompt. A run of the dead process that waits for
    terminal input (nobody can ever answer it: there is no record) gets C-c, and the
    pane is taken once its shell is back. A command still running keeps the pane
    (``pane_busy``, ``owner_died``)."""
    from sane.ops.prompts import Idle, Waiting, probe
    from sane.poll import poll

    def known() -> Waiting | Idle | None:
        return probe(client, pane_id)

    # A command of the dead run that is just ending (create-file's script after its
    # idle timer) is given a moment to reach the prompt: on a loaded machine that
    # moment is long, and pane_busy for a command over a few ms later is no answer
    # (seen: test_kill_9_of_create_file_at_random_points at load 10-25).
    found = known() or poll(known, ORPHAN_RUNNING_SECONDS)
    if isinstance(found, Idle):
        return True
    if not isinstance(found, Waiting):
        return False
    client.command(f"send-keys -t {pane_id} C-c")
    return bool(poll(lambda: isinstance(probe(client, pane_id), Idle), ORPHAN_SETTLE_SECONDS))


# How long the ending of a run whose recording died may take, once its shell is seen
# idle (run_wait's quiet period and prompt probe, on a loaded machine).
UNRECORDED_END_SECONDS = 5.0
# How long to look for that shell at its prompt before answering pane_busy.
UNRECORDED_IDLE_SECONDS = 2.0


def _ended_unrecorded(
    ctx: Context, client: ControlClient, state: panes.PaneState, value: str
) -> bool:
    """A handed-over run of this home whose recording died (its pipe's writer failed,
    e.g. on a full disk) and whose command is over: nothing would ever clear its flag
    but a ``run wait``, so the pane stayed ``pane_busy`` for every later run. It is
    provably over when nobody can be following it (the process that claimed the flag
    is gone), its pipe is gone, and the kernel shows the pane's shell at its own
    prompt: then it is ended here as ``run wait`` would end it (``lost``, its output
    so far kept) and True. Any doubt keeps the pane busy."""
    from sane.ops.prompts import Idle, probe

    holder = Holder.parse(value)
    if holder.home != os.path.abspath(ctx.home_dir) or not has_record(ctx, value):
        return False  # another home's run is ended by that home
    if holder.pid is None or pid_alive(holder.pid) or state.piped:
        return False
    from sane.poll import poll

    def idle() -> bool:
        found = probe(client, state.pane_id)
        return isinstance(found, Idle) and found.kernel

    # The shell may be a moment from its prompt (or a loaded probe slow to answer).
    if not poll(idle, UNRECORDED_IDLE_SECONDS, first=0.05, cap=0.5):
        return False
    from sane.ops.run.resume import run_wait

    try:
        ended = run_wait(ctx, holder.run_id, timeout=UNRECORDED_END_SECONDS)
    except errors.SaneError:
        return False
    return ended["status"] not in ("running", "waiting_input")


NEVER_TYPED_PROBE_SECONDS = 3.0


def forget_if_never_typed(ctx: Context, run_id: str) -> bool:
    """A durable run whose process was killed after saving its record and starting
    the pane's pipe, but before typing its command: forget it and say so (True).
    Known when nothing of the run came back though its recording still runs (its
    nonce, which the typed line's echo and the begin marker carry, is not in the
    stream, and the pipe is alive: a ``cat`` that died on a full disk records
    nothing), the nonce is nowhere in the pane's history either, and the kernel shows
    the pane's shell at its own prompt. Before, the deploy's
    recovery followed such a run until its deadline (a minute), then sent C-c and
    journalled the step ``interrupted``: failed, though it never ran. The pipe it
    started is stopped by the next durable run (it is marked sane's)."""
    from sane.ops.prompts import Idle, probe
    from sane.ops.run.record import forget_run

    try:
        rec = load_record(ctx, run_id)
        scanner, stream, _ = replay(ctx, rec)
    except (errors.SaneError, OSError):
        return False
    if not rec.get("durable") or rec.get("final") is not None or scanner.started:
        return False
    nonce = rec["nonce"]
    try:
        if nonce.encode() in stream.read_bytes():
            return False  # the typed line's echo came back
    except OSError:
        return False
    state = ctx.pane_state(rec["pane"])
    if not state.piped:
        return False  # the recording stopped: an empty stream proves nothing
    holder = state.busy_flag
    if holder is not None and run_of(holder) == run_id and _owner_may_be_alive(holder):
        return False  # its own process is alive: it may type it yet
    try:
        client = ctx.client(rec["session_id"])
        history = client.command(f"capture-pane -p -J -S - -t {rec['pane']}")
    except errors.SaneError:
        return False
    if any(nonce in line for line in history):
        return False
    from sane.poll import poll

    def idle() -> bool:
        found = probe(client, rec["pane"])
        return isinstance(found, Idle) and found.kernel

    # A probe that cannot answer now (a loaded server's side channel, a busy probe
    # slot) is asked again for a moment before the run is followed to its deadline.
    if not poll(idle, NEVER_TYPED_PROBE_SECONDS, first=0.05, cap=0.5):
        return False
    forget_run(ctx, run_id)
    return True


def _owner_may_be_alive(value: str) -> bool:
    """Could the process that set this flag still type its run? Asked of the process
    itself: :func:`stale` cannot tell, since the run's unfinished record keeps the flag
    (rightly) busy whether or not its owner lives, and so a run whose process was killed
    between recording and typing was followed to its deadline (a deploy step: a minute,
    then C-c, journalled ``interrupted`` and undone by rollback though it never ran).
    A flag without a pid (written by an older sane) might be alive."""
    pid = Holder.parse(value).pid
    return pid is None or pid_alive(pid)


def _set_unless_held(client: ControlClient, line: str) -> bool:
    """Run a :func:`claim_line`; False if another run holds the flag (tmux: "already set")."""
    try:
        client.command(line)
    except errors.TmuxError as exc:
        if "already set" not in exc.message:
            raise
        return False
    return True


def release(client: ControlClient, pane_id: str, value: str, note: RunResult | None = None) -> None:
    """Clear the busy flag if it still holds ``value``: an error path never clears a
    flag some other run holds. ``note``: the run's result, remembered in the pane
    (:func:`find_done`)."""
    with contextlib.suppress(errors.SaneError):  # the pane is gone: nothing to release
        current = client.command(f"display-message -p -t {pane_id} '#{{{panes.OPT_RUN}}}'")
        if current and current[0] == value:
            client.command(release_line(pane_id), *note_done(pane_id, note))


def runs_of(ctx: Context, holder: Holder) -> Path:
    """The runs directory of the home that owns ``holder``'s run."""
    from pathlib import Path

    return Path(holder.home) / "runs" if holder.home else runs_dir(ctx)


def stale(ctx: Context, value: str) -> bool:
    """Is the busy flag left over from a run that is provably over?

    Decided from the owner's own home (the flag names it), whichever home asks: the
    run's record says it ended, or it has no record and the process that claimed the
    flag is gone (it died inside its first call). A record that cannot be read
    proves nothing: the pane stays busy (its command may well be running)."""
    holder = Holder.parse(value)
    root = runs_of(ctx, holder)
    if (root / holder.run_id / "record.json").exists():
        try:
            return run_finished(ctx, holder.run_id, root)
        except errors.SaneError:
            return False
    # No record: the owner is still inside its first call, unless it died.
    return not (holder.pid is not None and pid_alive(holder.pid))


def _replayed(ctx: Context, value: str) -> tuple[RunRecord, sc.RunScanner] | None:
    """The flag's handed-over run: its record and its stream file replayed, or None
    when either cannot be read."""
    holder = Holder.parse(value)
    root = runs_of(ctx, holder)
    try:
        rec = load_record(ctx, holder.run_id, root)
        scanner, _, _ = replay(ctx, rec, root)
    except (errors.SaneError, OSError):
        return None
    return rec, scanner


def left_shell_exiting(ctx: Context, value: str) -> bool:
    """Did that run end in ``exit``, its shell still waiting for sane's keypress?"""
    replayed = _replayed(ctx, value)
    if replayed is None:
        return False
    rec, scanner = replayed
    outcome = scanner.outcome
    return outcome is not None and outcome.kind == sc.OUTCOME_EXITED and not rec.get("final")


def prompt_left(ctx: Context, value: str, pane_id: str) -> list[str]:
    """The tmux commands keeping the prompt a screen-checked shell drew after the
    flag's handed-over run ended, as its stream file recorded it (see
    :func:`sane.ops.has_input.prompt_after_run`)."""
    replayed = _replayed(ctx, value)
    return [] if replayed is None else prompt_after_run(Ended(), replayed[1], pane_id)


def has_record(ctx: Context, value: str) -> bool:
    """Whether the flag's run was handed over (its pipe-pane feeds its record)."""
    holder = Holder.parse(value)
    return (runs_of(ctx, holder) / holder.run_id / "record.json").exists()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pane_busy(ctx: Context, holder: str | None) -> bool:
    return holder is not None and not stale(ctx, holder)


def holder_value(ctx: Context, pane_id: str, run_id: str) -> str | None:
    try:
        holder = ctx.pane_state(pane_id).busy_flag
    except errors.SaneError:
        return None
    if holder is not None and run_of(holder) == run_id:
        return holder
    return None
