"""A run's result from the output not yet returned; too much output spills to a file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sane.ops.context import Context
from sane.ops.run.options import DEFAULT_MAX_OUTPUT
from sane.ops.run.record import RunRecord, prune_runs, runs_dir
from sane.protocol import output
from sane.protocol import scanner as sc
from sane.protocol.runner import SHELL_FISH

if TYPE_CHECKING:
    from sane.models import RunResult, RunStatus
    from sane.ops.prompts import Waiting


def build_result(
    ctx: Context,
    rec: RunRecord,
    scanner: sc.RunScanner,
    status: RunStatus,
    exit_code: int | None,
    shell_exited: bool,
    duration_ms: float,
    waiting: Waiting | None = None,
) -> RunResult:
    """Build the result from the output not yet returned; advance the record."""
    region = scanner.region()
    raw_from = rec["raw_returned"]
    piece = region[raw_from:]
    if status in ("running", "waiting_input"):
        piece = piece[: output.safe_cut(piece)]
    shown = piece
    if scanner.shell == SHELL_FISH:  # fish's `read` draws on the line: not output
        shown = output.tidy_fish(piece, region[:raw_from])
    data = output.clean(
        shown,
        keep_ansi=rec["keep_ansi"],
        aborted=status == "interrupted",
        exited=shell_exited,
        nonce=rec["nonce"],
        lost=status == "lost",
    )
    start = rec["returned"]
    rec["raw_returned"] = raw_from + len(piece)
    rec["returned"] = start + len(data)
    spill: str | None = None
    max_output = rec.get("max_output", DEFAULT_MAX_OUTPUT)
    if max_output is not None and len(data) > max_output:
        from sane.paths import private_dir
        from sane.state import write_atomic

        directory = private_dir(runs_dir(ctx) / rec["run_id"])
        spill_path = directory / f"output-{start}"
        write_atomic(spill_path, data)
        spill = str(spill_path)
        prune_runs(ctx, keep=rec["run_id"])  # old spills go as new ones come
    rendered = output.render(data, max_output, output.spill_note(str(spill)))
    # A TypedDict is a plain dict at run time: no need to import sane.models for it.
    result: RunResult = {
        "run_id": rec["run_id"],
        "pane": rec["pane"],
        "command": rec["command"],
        "status": status,
        "exit_code": exit_code,
        "output": rendered.text,
        "output_base64": rendered.text_base64,
        "output_start": start,
        "output_bytes": rendered.size,
        "truncated": rendered.truncated,
        "full_output_path": spill,
        "shell_exited": shell_exited,
        "shell_restarted": bool(rec.get("shell_restarted")),
        "duration_ms": round(duration_ms, 3),
        "prompt": waiting.prompt if waiting is not None else None,
        "waiting_reason": waiting.reason if waiting is not None else None,
        "waiting_program": waiting.program if waiting is not None else None,
    }
    return result
