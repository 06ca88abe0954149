"""Runs that ended within the call that started them, as their pane remembers them.

They have no record (their call returned everything), so ``run wait`` on one finds it
here and answers ``run_finished`` with its result instead of ``run_not_found``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from sane import errors
from sane.ops.context import Context
from sane.tmux import panes

if TYPE_CHECKING:
    from sane.models import RunResult, RunStatus

# Finished runs, newest first, in the pane option OPT_DONE: ``run_id:status:code:
# exited:bytes:ms;`` entries. tmux itself prepends each (``set-option -F``, in the same
# line that clears the busy flag: no extra round trip) and keeps the first DONE_LIMIT
# characters, so about the last ten runs of each pane stay known without a file.
DONE_LIMIT = 400


def note_done(pane_id: str, result: RunResult | None) -> list[str]:
    """The tmux command that remembers a run that ended within its call (none if the
    result could not be built)."""
    if result is None:
        return []
    code = "" if result["exit_code"] is None else str(result["exit_code"])
    entry = (
        f"{result['run_id']}:{result['status']}:{code}:{int(result['shell_exited'])}:"
        f"{result['output_start'] + result['output_bytes']}:{round(result['duration_ms'])};"
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


def parse_done(pane_id: str, value: str, run_id: str) -> DoneRun | None:
    """``run_id``'s entry in a pane's OPT_DONE value (a cut-off entry is ignored)."""
    for entry in value.split():
        fields = entry.split(":")
        if len(fields) != 6 or fields[0] != run_id or not entry.endswith(";"):
            continue
        status, code, exited, size, ms = fields[1], fields[2], fields[3], fields[4], fields[5][:-1]
        if (
            status in ("completed", "interrupted", "lost")
            and size.isdigit()
            and ms.isdigit()
            and (code == "" or code.isdigit())
        ):
            return DoneRun(
                pane_id,
                status,  # type: ignore[arg-type]
                int(code) if code else None,
                exited == "1",
                int(size),
                int(ms),
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
