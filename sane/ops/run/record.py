"""The record of a run handed over to later calls (``$SANE_HOME/runs/<id>/``).

``record.json`` (a :class:`RunRecord`) says what the run is and how much of its output
was returned; ``head`` holds what the starting process saw of the pane's stream,
``stream`` what pipe-pane wrote after it. Replaying both through a scanner tells where
the run is. Records are kept only as long as a wait may need them (:func:`prune_runs`).
"""

from __future__ import annotations

import time
import types
import typing
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from sane import errors
from sane.ops.context import Context
from sane.protocol import scanner as sc
from sane.protocol.runner import SHELL_POSIX

if TYPE_CHECKING:
    from pathlib import Path

    from sane.models import RunStatus  # imported where a record is checked (_hints)


class Final(TypedDict):
    """How a handed-over run ended, once a call saw it end."""

    status: RunStatus
    exit_code: int | None
    shell_exited: bool
    duration_ms: float


class RunRecord(TypedDict):
    """A run handed over to later calls: what it is, and how much of its output the
    calls so far returned (``returned`` bytes of cleaned output, made from the first
    ``raw_returned`` bytes of the run's stream).

    A TypedDict, not a dataclass or pydantic model, for the reason sane.models gives:
    every ``run_command`` builds one, and importing ``dataclasses`` (which imports
    ``inspect``) would add about 17 ms to a one-shot run's 25 ms of imports. The
    fields are typed for mypy and checked against these same annotations on load
    (:func:`load_record`). The other keys may be missing from a record written by an
    older sane; their defaults are the ones :func:`load_record` fills in."""

    run_id: str
    pane: str
    session_id: str
    command: str
    started: float  # wall-clock time the run began
    keep_ansi: bool
    nonce: str  # the run's marker nonce ("" until its command is framed)
    tokens: list[str]  # the shell's prompt-marker tokens (its scanner needs them)
    returned: int
    raw_returned: int
    max_output: NotRequired[int | None]
    socket: NotRequired[str]  # the tmux server's label, for a person reading the file
    owner: NotRequired[dict[str, str] | None]  # a deploy's id, step and server
    shell: NotRequired[str]  # sane.protocol.runner.SHELL_POSIX or SHELL_FISH
    final: NotRequired[Final | None]
    # The shell is not the one sane's earlier runs in this pane used: respawned after
    # it died, or its runner gone (a new shell exec'd in its place).
    shell_restarted: NotRequired[bool]
    durable: NotRequired[bool]  # recorded and piped before its command was typed
    resumable: NotRequired[bool]  # False: the pane had a pipe of its own at the hand-over


# Imported lazily below (sane.paths, sane.state, shutil): only timeouts and truncation
# touch files, and a one-shot CLI run must not pay for pathlib/tempfile imports.


def runs_dir(ctx: Context) -> Path:
    return ctx.home / "runs"


def save_record(ctx: Context, rec: RunRecord, head: bytes | None = None) -> None:
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


def load_record(ctx: Context, run_id: str, root: Path | None = None) -> RunRecord:
    """Run ``run_id``'s record (``root``: another home's runs directory): ``run_not_found``
    if there is none, ``state_invalid`` naming the file and its wrong fields if it is
    not a :class:`RunRecord` (before, a field missing was a KeyError in ``run wait``
    and an internal_error after every later hand-over)."""
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
    wrong = wrong_fields(RunRecord, rec)
    if wrong:
        raise errors.StateError(
            f"run record {path} is corrupt ({', '.join(wrong)}): the run cannot be followed",
            path=str(path),
            run_id=run_id,
        )
    record: RunRecord = rec
    return record


def wrong_fields(kind: Any, value: Any) -> list[str]:
    """The keys of TypedDict ``kind`` that the JSON value lacks (required ones) or holds
    with another type, checked against ``kind``'s own annotations; ``["the record"]``
    when ``value`` is no JSON object at all."""
    if not isinstance(value, dict):
        return ["the record"]
    wrong = []
    # (``__required_keys__`` cannot be used: under ``from __future__ import
    # annotations`` Python 3.11 counts a NotRequired key as required.)
    for name, hint in _hints(kind).items():
        if typing.get_origin(hint) is NotRequired:
            if name in value and not _fits(value[name], typing.get_args(hint)[0]):
                wrong.append(name)
        elif name not in value or not _fits(value[name], hint):
            wrong.append(name)
    return wrong


def _hints(kind: Any) -> dict[str, Any]:
    """``kind``'s annotations resolved. sane.models (RunStatus) is imported here, when a
    record is read, not with this module: a run that ends within its one-shot call never
    reads one, and the models' classes cost that call ~5 ms of start-up. (The name is
    bound in this module's namespace: a TypedDict resolves its annotations there, not
    in a namespace passed to get_type_hints.)"""
    if "RunStatus" not in globals():
        from sane.models import RunStatus

        globals()["RunStatus"] = RunStatus
    return typing.get_type_hints(kind, include_extras=True)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type ``hint`` (the kinds a record's fields use)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in args)
    if origin is Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(_fits(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    if typing.is_typeddict(hint):
        return not wrong_fields(hint, value)
    if hint is type(None):
        return value is None
    if hint in (int, float):  # JSON has one number type; a bool is no number here
        return isinstance(value, int | (float if hint is float else int)) and not isinstance(
            value, bool
        )
    return isinstance(value, hint)


def replay(
    ctx: Context, rec: RunRecord, root: Path | None = None
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
