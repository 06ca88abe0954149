"""Hand a run over to later calls (at its deadline, or at a prompt), and durable runs
(recorded and piped before their command is typed)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from sane import errors
from sane.ops.context import Context
from sane.ops.has_input import checks_screen, prompt_after_run
from sane.ops.run import busy
from sane.ops.run.ending import Follow, settle, status_of
from sane.ops.run.pipe import drop_leftover_pipe, pipe_to, unpipe
from sane.ops.run.record import Final, RunRecord, forget_run, prune_runs, runs_dir, save_record
from sane.ops.run.result import build_result
from sane.protocol import scanner as sc
from sane.tmux import panes
from sane.tmux.control import ControlClient, PaneStream

if TYPE_CHECKING:
    from sane.models import RunResult
    from sane.ops.prompts import Waiting


def hand_over(
    ctx: Context,
    client: ControlClient,
    stream: PaneStream,
    scanner: sc.RunScanner,
    rec: RunRecord,
    started: float,
    waiting: Waiting | None = None,
    unread: bool = False,
) -> RunResult:
    """The deadline passed or a prompt waits for an answer: record the rest of the
    stream to a file for later calls.

    ``unread``: the caller never reads the result (see ``RunOptions.unread``): the
    record keeps the output followed so far as not returned, for the next call.

    If the record cannot be written (a full disk, a read-only ``$SANE_HOME``) the
    hand-over is undone, the pane's busy flag released (else this process would hold
    the pane busy forever, nobody able to wait on the run) and ``state_invalid`` says
    so: the command may still be running in the pane.
    """
    import shutil

    from sane.paths import private_dir

    pane_id = rec["pane"]
    try:
        directory = private_dir(runs_dir(ctx) / rec["run_id"])
        stream_path = directory / "stream"
        if rec.get("durable"):
            # The file has held the pane's output since before the command was typed.
            scanner.feed(stream.take(0))
            head = b""
        else:
            try:
                stream_path.touch(mode=0o600)
            except OSError as exc:
                from sane.state import os_failure

                raise os_failure("write", stream_path, exc) from exc
            head = None
        state = ctx.pane_state(pane_id) if head is None else None
        if state is not None:
            rec["resumable"] = not state.piped
        if state is not None and not state.piped:
            reply = client.send(*pipe_to(pane_id, rec["run_id"], stream_path), mark=stream)
            client.result(reply)
            # What tmux sent before pipe-pane's reply is ours; the file holds the rest (the
            # reader thread may already have pushed later output too: cut it off exactly).
            scanner.feed(stream.take_until(reply.positions.get(stream, stream.pushed)))
        elif state is not None:
            scanner.feed(stream.take(0))
        if scanner.outcome is not None:
            # It finished in the meantime: no hand-over needed after all.
            keep = (
                prompt_after_run(stream, scanner, pane_id)
                if state is not None and checks_screen(state)
                else []
            )
            client.command(*keep, *unpipe(pane_id))
            shutil.rmtree(directory, ignore_errors=True)
            status, code, exited = status_of(Follow("outcome"), scanner, False)
            settle(ctx, client, pane_id, scanner)
            done = build_result(
                ctx, rec, scanner, status, code, exited, (time.perf_counter() - started) * 1000
            )
            busy.release(client, pane_id, busy.mine(ctx, rec["run_id"]).value, note=done)
            return done
        returned = rec["returned"], rec["raw_returned"]
        result = build_result(
            ctx,
            rec,
            scanner,
            "waiting_input" if waiting else "running",
            None,
            False,
            (time.perf_counter() - started) * 1000,
            waiting,
        )
        if unread:
            rec["returned"], rec["raw_returned"] = returned
        save_record(ctx, rec, head=bytes(scanner.buf) if head is None else head)
        prune_runs(ctx, keep=rec["run_id"])
        return result
    except (errors.StateError, errors.ResourceLimit) as exc:  # see sane.state.os_failure
        if rec.get("durable"):
            raise  # its record and pipe predate this failure: `run wait` can still follow
        with contextlib.suppress(errors.SaneError):
            client.command(*unpipe(pane_id))
        shutil.rmtree(runs_dir(ctx) / rec["run_id"], ignore_errors=True)
        busy.release(client, pane_id, busy.mine(ctx, rec["run_id"]).value)
        raise type(exc)(
            f"{exc.message}; run {rec['run_id']} {'waits for input' if waiting else 'timed out'} "
            "and could not be recorded, so "
            f"it cannot be waited on: its command may still be running in pane {pane_id}",
            **{**exc.details, "run_id": rec["run_id"], "pane": pane_id},
        ) from exc


def make_durable(
    ctx: Context,
    client: ControlClient,
    state: panes.PaneState,
    rec: RunRecord,
    scanner: sc.RunScanner,
) -> None:
    """Save the run's record and start piping the pane to it, before anything is typed."""
    from sane.paths import private_dir

    directory = private_dir(runs_dir(ctx) / rec["run_id"])
    stream_path = directory / "stream"
    if not rec.get("durable"):
        if ctx.pane_state(state.pane_id).piped and not drop_leftover_pipe(client, state.pane_id):
            raise errors.RunNotResumable(
                f"pane {state.pane_id} has a pipe-pane of its own, so a durable run "
                "cannot record its output",
                pane=state.pane_id,
            )
        stream_path.touch(mode=0o600)
        client.command(*pipe_to(state.pane_id, rec["run_id"], stream_path))
        rec["durable"] = True
        rec["resumable"] = True
    rec["nonce"], rec["tokens"] = scanner.nonce, sorted(scanner.tokens)
    rec["shell"] = scanner.shell
    save_record(ctx, rec, head=b"")


def end_durable(
    ctx: Context, client: ControlClient, rec: RunRecord, final: Final | None = None
) -> None:
    """Stop the pipe. A run that ended keeps its record, marked final, until the
    caller has noted the result (``forget_run``): dying before that must not lose it.
    A run that never started is forgotten at once."""
    if not rec.get("durable"):
        return
    with contextlib.suppress(errors.SaneError):
        client.command(*unpipe(rec["pane"]))
    if final is None:
        forget_run(ctx, rec["run_id"])
    else:
        # Best effort: on a full disk the record stays as it was before the command
        # (its stream has the output), as after a crash, and the caller still gets
        # the result it is holding.
        with contextlib.suppress(errors.StateError):
            save_record(ctx, {**rec, "final": final})
