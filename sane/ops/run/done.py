"""Runs that ended within the call that started them, as their pane remembers them.

They have no record (their call returned everything), so ``run wait`` or ``run
interrupt`` on one finds it here and returns its ending (:func:`done_result`) instead
of ``run_not_found``; ``run input`` is refused with ``run_finished``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from sane import errors
from sane.ops.context import Context
from sane.tmux import panes

if TYPE_CHECKING:
    from sane.models import RunResult, RunStatus

# Finished runs, newest first, in the pane option OPT_DONE: ``run_id:status:code:
# exited:bytes:ms:restarted;`` entries. tmux itself prepends each (``set-option -F``,
# in the same line that clears the busy flag: no extra round trip) and keeps the first
# DONE_LIMIT characters, so about the last ten runs of each pane stay known without a
# file. (An entry of an older sane has no ``restarted`` field.)
DONE_LIMIT = 400


def note_done(pane_id: str, result: RunResult | None) -> list[str]:
    """The tmux command that remembers a run that ended within its call (none if the
    result could not be built)."""
    if result is None:
        return []
    code = "" if result["exit_code"] is None else str(result["exit_code"])
    entry = (
        f"{result['run_id']}:{result['status']}:{code}:{int(result['shell_exited'])}:"
        f"{result['output_start'] + result['output_bytes']}:{round(result['duration_ms'])}:"
        f"{int(result['shell_restarted'])};"
    )
    return [
        f"set-option -p -F -t {pane_id} {panes.OPT_DONE} "
        f"'{entry} #{{={DONE_LIMIT}:{panes.OPT_DONE}}}'"
    ]


class DoneRun(NamedTuple):
    """A run that ended within its call, as its pane remembers it."""

    pane: str
    status: RunStatus
    exit_code: int | None
    shell_exited: bool
    output_bytes: int
    duration_ms: int
    shell_restarted: bool | None  # None: noted by an older sane, which did not keep it


def parse_done(pane_id: str, value: str, run_id: str) -> DoneRun | None:
    """``run_id``'s entry in a pane's OPT_DONE value (a cut-off entry is ignored)."""
    for entry in value.split():
        fields = entry[:-1].split(":")
        if len(fields) not in (6, 7) or fields[0] != run_id or not entry.endswith(";"):
            continue
        status, code, exited, size, ms = fields[1:6]
        restarted = fields[6] if len(fields) == 7 else None
        if (
            status in ("completed", "interrupted", "lost")
            and size.isdigit()
            and ms.isdigit()
            and (code == "" or code.isdigit())
            and restarted in (None, "0", "1")
        ):
            return DoneRun(
                pane_id,
                status,  # type: ignore[arg-type]
                int(code) if code else None,
                exited == "1",
                int(size),
                int(ms),
                None if restarted is None else restarted == "1",
            )
    return None


def find_done(ctx: Context, run_id: str) -> DoneRun | None:
    """Look for ``run_id`` among the finished runs the panes of this tmux server keep."""
    try:
        lines = ctx.tmux(["list-panes", "-a", "-F", f"#{{pane_id}}\t#{{{panes.OPT_DONE}}}"])
    except errors.SaneError:
        return None
    for line in lines:
        pane_id, _, value = line.partition("\t")
        if run_id in value:
            found = parse_done(pane_id, value, run_id)
            if found is not None:
                return found
    return None


def done_result(run_id: str, done: DoneRun) -> RunResult:
    """What ``run_wait``/``run_interrupt`` return for a run that ended within the call
    that started it, maybe in another process (a CLI one-shot, a deploy's step): its
    ending, and no output (that call returned all of it: ``output_start`` counts it).
    ``command`` is null: the pane's note does not keep the command's text."""
    result: RunResult = {
        "run_id": run_id,
        "pane": done.pane,
        "command": None,
        "status": done.status,
        "exit_code": done.exit_code,
        "output": "",
        "output_base64": None,
        "output_start": done.output_bytes,
        "output_bytes": 0,
        "truncated": False,
        "full_output_path": None,
        "shell_exited": done.shell_exited,
        "shell_restarted": bool(done.shell_restarted),
        "duration_ms": float(done.duration_ms),
        "prompt": None,
        "waiting_reason": None,
        "waiting_program": None,
    }
    return result


def done_in_time(run_id: str, done: DoneRun) -> errors.RunFinished:
    """``run_finished`` for a run that ended within the call that started it: that call
    returned its result and all its output, so there is nothing to wait for, interrupt
    or answer. The error carries the result (not ``run_not_found``: the id was real)."""
    code = "" if done.exit_code is None else f", exit {done.exit_code}"
    return errors.RunFinished(
        f"run {run_id} already ended ({done.status}{code}) within the call that started "
        f"it, which returned its result and all {done.output_bytes} bytes of its output; "
        "nothing was sent to the pane",
        run_id=run_id,
        pane=done.pane,
        status=done.status,
        exit_code=done.exit_code,
        shell_exited=done.shell_exited,
        output_bytes=done.output_bytes,
        duration_ms=done.duration_ms,
    )
