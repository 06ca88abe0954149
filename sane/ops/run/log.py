"""A recorded run read as it stands, for whoever wants to look (the MCP resources):
nothing typed, no flag touched, the run undisturbed."""

from __future__ import annotations

import contextlib
from typing import Any

from sane import errors
from sane.ops.context import Context
from sane.ops.run.record import load_record, replay, runs_dir
from sane.protocol import output


def recorded_runs(ctx: Context) -> list[str]:
    """The ids of the runs with a record in this home (left running by a timeout, or
    finished and not yet collected), newest first."""
    found = []
    try:
        entries = list(runs_dir(ctx).iterdir())
    except OSError:
        return []
    for directory in entries:
        with contextlib.suppress(OSError):  # forgotten meanwhile
            found.append(((directory / "record.json").stat().st_mtime, directory.name))
    return [run_id for _, run_id in sorted(found, reverse=True)]


def run_log(ctx: Context, run_id: str) -> tuple[dict[str, Any], bytes]:
    """A recorded run as it stands, read only (nothing typed, no flag touched): a
    summary and its whole output so far, cleaned as a result's output is (a growing
    run's unfinished last character or escape held back)."""
    rec = load_record(ctx, run_id)
    try:
        scanner, _, _ = replay(ctx, rec)
    except FileNotFoundError:
        raise errors.RunNotFound(f"run {run_id} was forgotten meanwhile", run_id=run_id) from None
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("read", runs_dir(ctx) / run_id, exc) from exc
    final = rec.get("final")
    region = scanner.region()
    status: str
    if final is not None:
        status = final["status"]
    elif scanner.outcome is not None:
        status = "ended"  # over, its result not collected yet: run_wait returns it
    else:
        status = "running"
        region = region[: output.safe_cut(region)]
    data = output.clean(
        region,
        keep_ansi=rec["keep_ansi"],
        aborted=status == "interrupted",
        exited=final is not None and final["shell_exited"],
        nonce=rec["nonce"],
        lost=status == "lost",
    )
    summary = {
        "run_id": run_id,
        "pane": rec["pane"],
        "command": rec["command"],
        "started": rec["started"],
        "status": status,
        "exit_code": final["exit_code"] if final else None,
        "duration_ms": final["duration_ms"] if final else None,
        "owner": rec.get("owner"),
        "output_bytes": len(data),
    }
    return summary, data
