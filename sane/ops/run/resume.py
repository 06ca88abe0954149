"""Later calls on a handed-over run: ``run_wait``, ``run_input``, ``run_interrupt``."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from sane import errors
from sane.ops.context import Context
from sane.ops.has_input import clear_answers_left
from sane.ops.run import busy
from sane.ops.run.done import done_in_time, done_result, find_done
from sane.ops.run.ending import Follow, settle, status_of
from sane.ops.run.follow import follow_file
from sane.ops.run.options import DEFAULT_QUIET_PERIOD, INTERRUPT_GRACE, OutputHook
from sane.ops.run.pipe import unpipe
from sane.ops.run.record import Final, RunRecord, load_record, replay, save_record
from sane.ops.run.result import build_result
from sane.protocol.editor import EDITOR_TTY, SCREEN_EDITORS
from sane.tmux import panes
from sane.tmux.command import quote
from sane.tmux.control import ControlClient

if TYPE_CHECKING:
    from sane.models import RunResult


def run_wait(
    ctx: Context,
    run_id: str,
    timeout: float = 30.0,
    interrupt: bool = False,
    interrupt_grace: float = INTERRUPT_GRACE,
    quiet_period: float | None = DEFAULT_QUIET_PERIOD,
    follow: Following | None = None,
) -> RunResult:
    """Wait again on a run left ``running`` or ``waiting_input``; return the output not
    returned yet. ``follow``: the caller's output hook and stop (see :class:`Following`)."""
    return _resume(ctx, run_id, timeout, quiet_period, interrupt, interrupt_grace, None, follow)


def run_input(
    ctx: Context,
    run_id: str,
    text: str,
    enter: bool = True,
    timeout: float = 30.0,
    quiet_period: float | None = DEFAULT_QUIET_PERIOD,
    multi_line: bool = False,
    follow: Following | None = None,
) -> RunResult:
    """Answer a run's prompt: type ``text`` literally (then Enter unless ``enter`` is
    false) into the run's pane and follow the run on, as :func:`run_wait` does.

    Refused with ``run_finished`` when the run has ended: the text would reach the
    idle shell as a command. ``text`` is never written to any record or log.
    ``text`` is one line (:func:`check_answer`) unless ``multi_line``.
    """
    errors.refuse_nul("text", text)
    check_answer(text, multi_line)
    return _resume(ctx, run_id, timeout, quiet_period, keys=(text, enter), following=follow)


def run_interrupt(
    ctx: Context, run_id: str, grace: float = INTERRUPT_GRACE, follow: Following | None = None
) -> RunResult:
    """Send C-c to a run left ``running`` and return how it ended."""
    return run_wait(ctx, run_id, timeout=0.0, interrupt=True, interrupt_grace=grace, follow=follow)


class Following(NamedTuple):
    """What the caller of a later call on a run brings: ``on_output`` after each chunk
    of new output (progress); ``stop``, set from another thread to stop following at
    once (the run stays resumable); ``unread``, set with it when the caller is gone and
    never reads the result (an MCP call cancelled by its client): the output followed
    is then left to the next call, which returns it."""

    on_output: OutputHook | None = None
    stop: threading.Event | None = None
    unread: threading.Event | None = None

    def forget(self, rec: RunRecord, returned: tuple[int, int]) -> None:
        """Put the record's returned counters back when nobody reads this result."""
        if self.unread is not None and self.unread.is_set():
            rec["returned"], rec["raw_returned"] = returned


def check_answer(text: str, multi_line: bool = False) -> None:
    """An answer holds printable characters and tabs only (and newlines when
    ``multi_line``), else ``invalid_argument`` naming the first other one.

    A terminal acts on control characters instead of passing them to the program:
    a newline or CR ends the line (whatever follows would reach the shell as a
    command once the program exits), C-c/C-z/C-\\ signal, C-d ends input, C-u/C-w
    erase. So an answer is one line of text; line breaks only when asked for."""
    for index, ch in enumerate(text):
        if ch == "\t" or (ch == "\n" and multi_line) or not (ch < " " or ch == "\x7f"):
            continue
        what = "a line break" if ch in "\r\n" else f"the control character {ch!r}"
        hint = (
            "pass --multi-line (MCP: multi_line) to type several lines; each line ends with Enter"
            if ch == "\n"
            else "send keys such as C-d with send_keys; interrupt with run_interrupt"
        )
        raise errors.InvalidArgument(
            f"the answer holds {what} at index {index}: an answer is one line of text",
            field="text",
            index=index,
            hint=hint,
        )


def _resume(
    ctx: Context,
    run_id: str,
    timeout: float,
    quiet_period: float | None,
    interrupt: bool = False,
    interrupt_grace: float = INTERRUPT_GRACE,
    keys: tuple[str, bool] | None = None,
    following: Following | None = None,
) -> RunResult:
    following = following or Following()
    try:
        rec = load_record(ctx, run_id)
    except errors.RunNotFound:
        done = find_done(ctx, run_id)
        if done is None:
            raise
        if keys is not None or done.shell_restarted is None:
            raise done_in_time(run_id, done) from None
        return done_result(run_id, done)  # as for a recorded run that ended (below)
    final = rec.get("final")
    scanner, stream_path, size = replay(ctx, rec)
    if keys is not None and (final is not None or scanner.outcome is not None):
        raise _finished(run_id, final)
    if final is not None:
        return build_result(
            ctx,
            rec,
            scanner,
            final["status"],
            final["exit_code"],
            final["shell_exited"],
            final["duration_ms"],
        )
    if not rec.get("resumable", True):
        raise errors.RunNotResumable(
            f"pane {rec['pane']} already had a pipe-pane of its own when run {run_id} "
            "timed out, so its later output could not be recorded",
            run_id=run_id,
        )
    deadline = time.monotonic() + timeout
    pane_id = rec["pane"]
    follow: Follow
    client: ControlClient | None = None
    try:
        client = ctx.client(rec["session_id"])
    except errors.SaneError:
        follow = Follow("lost")
    else:
        if keys is not None:
            _type_answer(ctx, client, pane_id, run_id, *keys)
        follow = follow_file(
            ctx,
            client,
            pane_id,
            scanner,
            stream_path,
            size,
            deadline,
            interrupt,
            interrupt_grace,
            quiet_period,
            following.on_output,
            following.stop,
            screen=_checks_screen(client, pane_id),
        )
    returned = rec["returned"], rec["raw_returned"]
    if follow.kind in ("timeout", "waiting"):
        result = build_result(
            ctx,
            rec,
            scanner,
            "waiting_input" if follow.waiting else "running",
            None,
            False,
            (time.time() - rec["started"]) * 1000,
            follow.waiting,
        )
        following.forget(rec, returned)
        save_record(ctx, rec)
        return result
    status, code, exited = status_of(follow, scanner, interrupt)
    duration = (time.time() - rec["started"]) * 1000
    result = build_result(ctx, rec, scanner, status, code, exited, duration)
    if client is not None:
        with contextlib.suppress(errors.SaneError):  # while the pane lives (see unpipe)
            client.command(*follow.prompt, *unpipe(pane_id))
        settle(ctx, client, pane_id, scanner)
        holder = busy.holder_value(ctx, pane_id, run_id)
        try:
            if not exited:
                with contextlib.suppress(errors.SaneError):  # no pane: nothing to clear
                    clear_answers_left(client, ctx.pane_state(pane_id), scanner)
        finally:
            if holder is not None:
                # The pane remembers the ending (find_done), as for a run that ended
                # within its first call: a durable run's record is forgotten once its
                # caller has the result (a deploy's step, once journalled), and a
                # later run_wait/run_interrupt of its id must still find the ending.
                busy.release(client, pane_id, holder, note=result)
    rec["final"] = {
        "status": status,
        "exit_code": code,
        "shell_exited": exited,
        "duration_ms": round(duration, 3),
    }
    following.forget(rec, returned)
    # The run is over and its pane free: a full disk must not turn the result this call
    # holds into an error (it was lost so, the flag already released). Unsaved, a later
    # wait works it out again from the stream.
    with contextlib.suppress(errors.StateError):
        save_record(ctx, rec)
    return result


def _checks_screen(client: ControlClient, pane_id: str) -> bool:
    """Whether the pane's command line is checked on its screen (its prompt must
    then be read after the run's end: see :func:`follow_file`)."""
    try:
        lines = client.command(f"display-message -p -t {pane_id} '#{{{panes.OPT_EDITOR}}}'")
    except errors.SaneError:
        return False
    return bool(lines) and (lines[0].strip() in SCREEN_EDITORS or lines[0].strip() == EDITOR_TTY)


def _finished(run_id: str, final: Final | None) -> errors.RunFinished:
    return errors.RunFinished(
        f"run {run_id} has ended, so nothing was typed (the text would have gone to the "
        "shell as a command); `sane run wait` returns its result",
        run_id=run_id,
        status=final["status"] if final else None,
    )


def _type_answer(
    ctx: Context, client: ControlClient, pane_id: str, run_id: str, text: str, enter: bool
) -> None:
    """Type into the run's command, only while the pane's busy flag still names the run.

    ``send-keys -l --`` sends every character as itself (no key names, no option
    parsing); ``copy-mode -q`` first, as for a run, so a person's scrollback mode does
    not eat the keys.
    """
    if busy.holder_value(ctx, pane_id, run_id) is None:
        raise _finished(run_id, None)
    from sane.ops.prompts import Idle, probe

    if not (text or enter):
        return
    found = probe(client, pane_id)
    if found is None or (isinstance(found, Idle) and not found.kernel):
        # Busy (the kernel says so), or the process state could not be read and the
        # screen shows no prompt: typed ahead, the text would run as a shell command
        # if the command ended without reading it.
        raise errors.RunNotWaiting(
            f"run {run_id} is not waiting for input (its command is busy, or the pane's "
            "process state could not be read and the screen shows no prompt), so "
            "nothing was typed: text typed ahead would run as a shell command if the "
            "command ends without reading it; answer once `sane run wait` says "
            "waiting_input",
            run_id=run_id,
            pane=pane_id,
        )
    if isinstance(found, Idle):
        # The run's own shell sits at its prompt, outside sane's runner: the run is
        # over though its end never reached the record (its pipe died, say). Whatever
        # is typed now would run as a command.
        raise errors.RunFinished(
            f"run {run_id} has ended: the shell in pane {pane_id} is back at its own "
            "prompt, so nothing was typed (the text would have run as a command); "
            "`sane run wait` returns how it ended",
            run_id=run_id,
            pane=pane_id,
            status=None,
        )
    line = [f"copy-mode -q -t {pane_id}"]
    if text:
        line.append(f"send-keys -t {pane_id} -l -- {quote(text)}")
    if enter:
        line.append(f"send-keys -t {pane_id} Enter")
    client.command(*line)
