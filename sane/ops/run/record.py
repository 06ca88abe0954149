"""The record of a run handed over to later calls (``$SANE_HOME/runs/<id>/``).

``record.json`` says what the run is and how much of its output was returned; ``head``
holds what the starting process saw of the pane's stream, ``stream`` what pipe-pane
wrote after it. Replaying both through a scanner tells where the run is. Records are
kept only as long as a wait may need them (:func:`prune_runs`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sane import errors
from sane.ops.context import Context
from sane.protocol import scanner as sc
from sane.protocol.runner import SHELL_POSIX

if TYPE_CHECKING:
    from pathlib import Path

# Imported lazily below (sane.paths, sane.state, shutil): only timeouts and truncation
# touch files, and a one-shot CLI run must not pay for pathlib/tempfile imports.


def runs_dir(ctx: Context) -> Path:
    return ctx.home / "runs"


def save_record(ctx: Context, rec: dict[str, Any], head: bytes | None = None) -> None:
    from sane.paths import private_dir
    from sane.state import write_atomic, write_json

    directory = private_dir(runs_dir(ctx) / rec["run_id"])
    if head is not None:
        write_atomic(directory / "head", head)
    write_json(directory / "record.json", rec)


RECORD_MAX_AGE = 7 * 24 * 3600.0


def prune_runs(ctx: Context, keep: str = "", max_age: float = RECORD_MAX_AGE) -> list[str]:
    """Remove records of runs that ended and were last touched over ``max_age`` seconds
    ago (they hold command text and output: keep them no longer than a wait needs),
    and spilled outputs as old. A record whose run may still be going is kept, however
    old. Runs on each hand-over and each spill, so it costs nothing on a run that
    finishes in time with its output in the result."""
    removed: list[str] = []
    root = runs_dir(ctx)
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    limit = time.time() - max_age
    for directory in entries:
        run_id = directory.name
        if run_id == keep:
            continue
        try:
            if not (directory / "record.json").exists():
                # No record: the spilled output of a run that ended within its call
                # (its result named the file). Kept as long as a record would be.
                if _newest(directory) > limit:
                    continue
                ended = True
            elif (directory / "record.json").stat().st_mtime > limit:
                continue
            else:
                ended = run_finished(ctx, run_id)
        except (OSError, errors.SaneError):
            continue
        if ended:
            forget_run(ctx, run_id)
            removed.append(run_id)
    return removed


def _newest(directory: Path) -> float:
    """The latest change to ``directory`` or a file in it."""
    return max(
        [directory.stat().st_mtime, *(entry.stat().st_mtime for entry in directory.iterdir())]
    )


# What a run record must hold for any call to use it, and of which type (a record of
# another shape, `[]` or a field missing, is `state_invalid`: before, it was a
# KeyError in `run wait` and an internal_error after every later hand-over).
_RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "pane": str,
    "session_id": str,
    "command": str,
    "tokens": list,
    "started": (int, float),
    "keep_ansi": bool,
    "returned": int,
    "raw_returned": int,
}


def load_record(ctx: Context, run_id: str, root: Path | None = None) -> dict[str, Any]:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise errors.InvalidArgument(f"not a run id: {run_id!r}", run_id=run_id)
    from sane.state import read_json

    path = (root or runs_dir(ctx)) / run_id / "record.json"
    try:
        rec = read_json(path)
    except FileNotFoundError:
        raise errors.RunNotFound(
            f"no run {run_id} to wait on: only runs left running by a timeout are kept",
            run_id=run_id,
        ) from None
    wrong = ([] if isinstance(rec, dict) else ["the record"]) or [
        name for name, kind in _RECORD_FIELDS.items() if not isinstance(rec.get(name), kind)
    ]
    if not wrong and not isinstance(rec.get("nonce"), str | None):
        wrong = ["nonce"]
    if not wrong and not isinstance(rec.get("final"), dict | None):
        wrong = ["final"]
    if wrong:
        raise errors.StateError(
            f"run record {path} is corrupt ({', '.join(wrong)}): the run cannot be followed",
            path=str(path),
            run_id=run_id,
        )
    result: dict[str, Any] = rec
    return result


def replay(
    ctx: Context, rec: dict[str, Any], root: Path | None = None
) -> tuple[sc.RunScanner, Path, int]:
    """A scanner fed with everything recorded so far; the stream file and its size."""
    directory = (root or runs_dir(ctx)) / rec["run_id"]
    scanner = sc.RunScanner(rec["nonce"], rec["tokens"], rec.get("shell", SHELL_POSIX))
    scanner.feed((directory / "head").read_bytes())
    stream_path = directory / "stream"
    data = stream_path.read_bytes() if stream_path.exists() else b""
    scanner.feed(data)
    return scanner, stream_path, len(data)


def run_finished(ctx: Context, run_id: str, root: Path | None = None) -> bool:
    """Whether the recorded run ended (``root``: another home's runs directory)."""
    rec = load_record(ctx, run_id, root)
    if rec.get("final") is not None:
        return True
    try:
        scanner, _, _ = replay(ctx, rec, root)
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("read", (root or runs_dir(ctx)) / run_id, exc) from exc
    return scanner.outcome is not None


def forget_run(ctx: Context, run_id: str) -> None:
    """Remove a run's record (a durable run's caller calls it once the result is safe)."""
    import shutil

    if run_id and "/" not in run_id and not run_id.startswith("."):
        shutil.rmtree(runs_dir(ctx) / run_id, ignore_errors=True)
