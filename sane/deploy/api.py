"""The deploy operations the CLI (and the MCP server) call: deploy, status, list,
resume, rollback. Every report is folded from the journal, so ``deploy`` and a later
``status`` of the same deploy print the same facts."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from sane import errors
from sane.deploy.engine import (
    Saga,
    _deploy_dir,
    _is_owned,
    _owned,
    aggregate,
    batches,
    deploys_dir,
    items_of,
    new_deploy_id,
)
from sane.deploy.journal import RESERVE_BYTES, DeployFold, Journal, fold, read_events
from sane.deploy.plan import LoadedPlan, load_plan
from sane.fleet.registry import Server
from sane.ops.context import Context
from sane.paths import private_dir
from sane.state import read_json, write_atomic, write_json

Event = dict[str, Any]


def dry_run(
    plan_path: str,
    servers: list[Server],
    env: dict[str, str] | None = None,
    max_parallel: int | None = None,
    allow_outside_sources: bool = False,
) -> dict[str, Any]:
    """What a deploy would do, in what order; nothing is contacted."""
    loaded, contents = load_plan(plan_path, env, max_parallel, allow_outside_sources)
    names = [server.name for server in servers]
    return {
        "dry_run": True,
        "plan": loaded.plan.name,
        "source": loaded.source,
        "servers": names,
        "batches": batches(loaded, names),
        "items": [item.key for item in items_of(loaded)],
        "files": [
            {"path": spec.path, "sha256": digest, "bytes": len(data)}
            for spec, digest, data in zip(
                loaded.plan.files, loaded.file_digests, contents, strict=True
            )
        ],
        "strategy": loaded.plan.strategy.model_dump(),
        "policy": loaded.plan.policy.model_dump(),
        "env": loaded.plan.env,
    }


def deploy(
    ctx: Context,
    plan_path: str,
    servers: list[Server],
    on_event: Callable[[Event], None] | None = None,
    env: dict[str, str] | None = None,
    max_parallel: int | None = None,
    allow_outside_sources: bool = False,
) -> dict[str, Any]:
    """Deploy the plan at ``plan_path`` to ``servers``; the folded report. ``env`` and
    ``max_parallel`` override the plan's (and are kept for resume);
    ``allow_outside_sources``: files from outside the plan's directory (see load_plan)."""
    loaded, contents = load_plan(plan_path, env, max_parallel, allow_outside_sources)
    if not servers:
        raise errors.UsageError("no servers selected for the deploy")
    deploy_id = new_deploy_id()
    directory = private_dir(deploys_dir(ctx) / deploy_id)
    files = private_dir(directory / "files")
    for digest, data in zip(loaded.file_digests, contents, strict=True):
        write_atomic(files / digest, data)
    write_json(
        directory / "plan.json",
        {
            "deploy_id": deploy_id,
            "loaded": loaded.model_dump(mode="json"),
            "servers": [server.model_dump(mode="json") for server in servers],
        },
    )
    with _naming(deploy_id), _owned(directory), Journal(directory, RESERVE_BYTES) as journal:
        journal.append(
            "deploy_started",
            deploy_id=deploy_id,
            plan=loaded.plan.name,
            source=loaded.source,
            servers=[s.name for s in servers],
            strategy=loaded.plan.strategy.kind,
            pid=os.getpid(),
        )
        saga = Saga(ctx, directory, loaded, contents, servers, journal, on_event)
        saga.forward_all()
        saga.finish()
        journal.drop_reserve()
    return report(deploy_id, directory)


@contextlib.contextmanager
def _naming(deploy_id: str) -> Iterator[None]:
    """An error that stops a deploy (a full ``$SANE_HOME``) names it in
    ``details.deploy_id``: the caller needs the id for ``status``/``resume``/``rollback``."""
    try:
        yield
    except errors.SaneError as exc:
        exc.details.setdefault("deploy_id", deploy_id)
        raise


def _reopen(ctx: Context, deploy_id: str) -> tuple[Any, LoadedPlan, list[bytes], list[Server]]:
    directory = _deploy_dir(ctx, deploy_id)
    stored = read_json(directory / "plan.json")
    loaded = LoadedPlan.model_validate(stored["loaded"])
    contents = []
    for digest in loaded.file_digests:
        try:
            contents.append((directory / "files" / digest).read_bytes())
        except OSError as exc:
            raise errors.StateError(
                f"deploy {deploy_id}: stored file {digest} is gone ({exc.strerror})",
                deploy_id=deploy_id,
            ) from None
    servers = [Server.model_validate(s) for s in stored["servers"]]
    return directory, loaded, contents, servers


def resume(
    ctx: Context, deploy_id: str, on_event: Callable[[Event], None] | None = None
) -> dict[str, Any]:
    """Finish an interrupted deploy: learn how its last runs ended, then carry on
    without redoing what is done."""
    return _continue(ctx, deploy_id, "resumed", on_event, Saga.forward_all)


def rollback(
    ctx: Context, deploy_id: str, on_event: Callable[[Event], None] | None = None
) -> dict[str, Any]:
    """Undo everything the deploy applied on every server, newest first."""
    return _continue(ctx, deploy_id, "rollback_started", on_event, Saga.rollback_all)


def _continue(
    ctx: Context,
    deploy_id: str,
    event: str,
    on_event: Callable[[Event], None] | None,
    work: Callable[[Saga], None],
) -> dict[str, Any]:
    """Take over a deploy no process is working on and carry it on with ``work``."""
    directory, loaded, contents, servers = _reopen(ctx, deploy_id)
    with _naming(deploy_id), _owned(directory), Journal(directory, RESERVE_BYTES) as journal:
        journal.append(event, pid=os.getpid())
        saga = Saga(ctx, directory, loaded, contents, servers, journal, on_event)
        saga.recover()
        work(saga)
        saga.finish()
        journal.drop_reserve()
    return report(deploy_id, directory)


def status(ctx: Context, deploy_id: str) -> dict[str, Any]:
    return report(deploy_id, _deploy_dir(ctx, deploy_id))


def list_deploys(ctx: Context) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    root = deploys_dir(ctx)
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        if not (directory / "plan.json").exists():
            continue
        try:
            state = fold(read_events(directory))
        except errors.SaneError as exc:
            found.append(
                {"deploy_id": directory.name, "status": "unreadable", "error": exc.to_dict()}
            )
            continue
        found.append(
            {
                "deploy_id": directory.name,
                "plan": state.started.get("plan"),
                "started_at": state.started["at"],
                "status": _status(state, directory),
                "servers": len(state.servers),
                "counts": _counts(state, directory),
            }
        )
    return {"deploys": found}


def _status(state: DeployFold, directory: Any) -> str:
    if state.finished is not None:
        return str(state.finished["status"])
    return "running" if _is_owned(directory) else "interrupted"


def _counts(state: DeployFold, directory: Any) -> dict[str, int]:
    pending = "in_progress" if _is_owned(directory) else "interrupted"
    states = [fs.state or pending for fs in state.servers.values()]
    return {
        name: states.count(name)
        for name in (
            "deployed",
            "rolled_back",
            "rollback_failed",
            "failed",
            "untouched",
            "in_progress",
            "interrupted",
        )
        if states.count(name)
    }


def report(deploy_id: str, directory: Any) -> dict[str, Any]:
    """The deploy as its journal tells it."""
    state = fold(read_events(directory))
    owned = _is_owned(directory)
    servers = []
    for name, fs in state.servers.items():
        servers.append(
            {
                "server": name,
                "state": fs.state or ("in_progress" if owned else "interrupted"),
                "reason": fs.reason,
                "failed_item": fs.failed,
                "applied": [item for item in fs.done if item not in fs.undone],
                "undone": fs.undone,
                "undo_failed": fs.undo_failed,
                "in_flight": [
                    {
                        "item": item,
                        "phase": phase,
                        "run_id": ev.get("run_id"),
                        "attempt": ev.get("attempt"),
                    }
                    for (item, phase), ev in fs.in_flight.items()
                ],
                "steps": [_entry(ev) for ev in fs.log],
            }
        )
    started = state.started["at"]
    last = state.finished["at"] if state.finished else None
    return {
        "deploy_id": deploy_id,
        "plan": state.started.get("plan"),
        "status": _status(state, directory),
        "outcome": aggregate(state) if state.finished is None else state.finished["status"],
        "aborted": state.aborting,
        "counts": _counts(state, directory),
        "servers": servers,
        "journal": str(directory / "journal.jsonl"),
        "duration_ms": round((last - started) * 1000, 3) if last else None,
    }


def _entry(event: Event) -> Event:
    keep = (
        "item",
        "phase",
        "attempt",
        "status",
        "ok",
        "exit_code",
        "output",
        "action",
        "duration_ms",
        "run_id",
        "recovered",
        "reason",
        "detail",
        "error",
        "output_truncated",
        "waited_ms",
    )
    entry = {key: event[key] for key in keep if key in event and event[key] is not None}
    if event["event"] == "gate_finished":
        entry.setdefault("item", "health")
        entry.setdefault("phase", "gate")
    return entry
