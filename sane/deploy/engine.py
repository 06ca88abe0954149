"""Deploys as sagas: forward per server, compensations in reverse, by strategy and policy.

One server's forward path is: place the plan's files (skipping those the server
already has, by sha256), run the steps in order (each with retries and a check), then
wait for its health gate. A server that fails has its applied items undone at once,
newest first (``rollback: failed`` or ``all``); with ``rollback: all`` every other
server is then stopped at its next item and undone too. An undo that fails is
recorded and the other compensations go on.

Everything that happens is journalled first (see ``journal``), and this module keeps
no other state: ``resume`` and ``rollback`` fold the journal and carry on from there.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sane import errors
from sane.deploy import remote
from sane.deploy.journal import DeployFold, Journal, ServerFold, _fold_server, fold, read_events
from sane.deploy.plan import FileSpec, LoadedPlan, Step, order
from sane.fleet.panes import open_server_pane
from sane.fleet.registry import Server
from sane.ops.context import Context
from sane.ops.run.options import new_run_id
from sane.ops.run.record import forget_run
from sane.parallel import bounded_map

Event = dict[str, Any]
FINAL_STATES = ("deployed", "rolled_back", "rollback_failed", "failed", "untouched")


@dataclass(frozen=True)
class Item:
    """A file to place or a step to run: what a server's saga is made of."""

    key: str
    kind: str  # "file" | "step"
    index: int
    file: FileSpec | None = None
    step: Step | None = None


def items_of(loaded: LoadedPlan) -> list[Item]:
    files = [
        Item(f"file:{spec.path}", "file", i, file=spec) for i, spec in enumerate(loaded.plan.files)
    ]
    steps = [
        Item(f"step:{step.name}", "step", i, step=step)
        for i, step in enumerate(order(loaded.plan.steps))
    ]
    return files + steps


def batches(loaded: LoadedPlan, names: list[str]) -> list[list[str]]:
    """Servers in the order the strategy works on them."""
    strategy = loaded.plan.strategy
    if strategy.kind == "rolling":
        size = strategy.batch_size
        return [names[i : i + size] for i in range(0, len(names), size)]
    if strategy.kind == "canary":
        head = names[: strategy.canary]
        return [head, names[strategy.canary :]] if names[strategy.canary :] else [head]
    return [names]


def deploys_dir(ctx: Context) -> Path:
    return ctx.home / "deploys"


def new_deploy_id() -> str:
    return "d" + time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()


def _deploy_dir(ctx: Context, deploy_id: str) -> Path:
    if not deploy_id or "/" in deploy_id or deploy_id.startswith("."):
        raise errors.InvalidArgument(f"not a deploy id: {deploy_id!r}", deploy_id=deploy_id)
    directory = deploys_dir(ctx) / deploy_id
    if not (directory / "plan.json").exists():
        raise errors.DeployNotFound(
            f"no deploy {deploy_id} in {deploys_dir(ctx)}", deploy_id=deploy_id
        )
    return directory


# A process working on a deploy holds its lock throughout; ``status`` only probes it,
# for microseconds, with a shared lock. Taking the lock waits this long, so a status
# poller never makes ``resume`` or ``rollback`` refuse (it did 615 times in 3,000).
OWN_WAIT = 2.0


@contextmanager
def _owned(directory: Path) -> Iterator[None]:
    """Hold the deploy's lock while working on it: one process at a time."""
    from sane.flock import flock_within
    from sane.paths import open_private

    try:
        fd = open_private(str(directory / "lock"), os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("lock", directory / "lock", exc) from exc
    try:
        if not flock_within(fd, OWN_WAIT):
            raise errors.DeployRunning(
                f"deploy {directory.name} is being worked on by another process",
                deploy_id=directory.name,
            ) from None
        yield
    finally:
        os.close(fd)


def _is_owned(directory: Path) -> bool:
    """Whether a process works on the deploy: its lock is held. Probed with a shared
    lock, never the exclusive one a worker takes."""
    try:
        fd = os.open(directory / "lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _local_failure(exc: errors.SaneError) -> bool:
    """A failure to record on this machine (a full or read-only ``$SANE_HOME``): not
    the step's failure. The deploy stops there with the step in flight, so ``resume``
    or ``rollback`` learns how it really ended, instead of journalling it ``error``
    (a step that ran, never undone)."""
    return isinstance(exc, errors.StateError) and not isinstance(
        exc, errors.StateLocked | errors.ConfigInvalid
    )


class Saga:
    """Carries one deploy forward (or back) from what its journal says so far."""

    def __init__(
        self,
        ctx: Context,
        directory: Path,
        loaded: LoadedPlan,
        contents: list[bytes],
        servers: list[Server],
        journal: Journal,
        on_event: Callable[[Event], None] | None,
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.deploy_id = directory.name
        self.loaded = loaded
        self.plan = loaded.plan
        self.contents = contents
        self.servers = {server.name: server for server in servers}
        self.names = [server.name for server in servers]
        self.journal = journal
        self.on_event = on_event
        self.items = items_of(loaded)
        self.by_key = {item.key: item for item in self.items}
        self.state = fold(read_events(directory))
        self.lock = threading.Lock()
        self.abort = threading.Event()
        self.homes: dict[str, str] = {}
        if self.state.aborting:
            self.abort.set()

    # -- journal ---------------------------------------------------------------------

    def note(self, event: str, **fields: Any) -> Event:
        if event == "item_started" and self.journal.on_reserve:
            from sane.state import os_failure

            raise os_failure(
                f"start {fields.get('item')} on {fields.get('server')}: the deploy stopped, "
                "since there is no space left to record it in",
                self.journal.path,
                OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
            )
        with self.lock:
            record = self.journal.append(event, **fields)
            server = self.state.servers.get(fields.get("server", ""))
            if server is not None:
                _fold_server(server, event, record)
            elif event == "aborting":
                self.state.aborting = fields.get("reason") or "aborted"
        if self.on_event is not None:
            self.on_event({"deploy_id": self.deploy_id, **record})
        return record

    # -- one run on one server --------------------------------------------------------

    def run(
        self, name: str, item: Item, phase: str, attempt: int, command: str, timeout: float
    ) -> dict[str, Any]:
        run_id = new_run_id()
        env = {
            "SANE_DEPLOY_ID": self.deploy_id,
            "SANE_SERVER": name,
            "SANE_STEP": item.key,
            **self.plan.env,
        }
        self.note(
            "item_started",
            server=name,
            item=item.key,
            phase=phase,
            attempt=attempt,
            run_id=run_id,
            deadline_at=round(time.time() + timeout, 3),
        )
        try:
            owner = {"deploy_id": self.deploy_id, "step": item.key, "phase": phase, "server": name}
            result = remote.run_step(
                self.ctx, self.servers[name], remote.wrap(command, env), timeout, run_id, owner
            )
            out = remote.outcome(result)
        except errors.SaneError as exc:
            if _local_failure(exc):
                raise
            out = _failure(exc, run_id)
        self.note(
            "item_finished",
            server=name,
            item=item.key,
            phase=phase,
            attempt=attempt,
            **out,
            **_settles(item, phase, out["ok"]),
        )
        forget_run(self.ctx, run_id)  # the journal has the result now
        return out

    # -- forward ---------------------------------------------------------------------

    def forward(self, name: str) -> bool | None:
        """Apply every item not yet applied, then the gate. None: stopped by an abort."""
        fs = self.state.servers[name]
        for item in self.items:
            if item.key in fs.done:
                continue
            if self.abort.is_set() and self.plan.policy.rollback == "all":
                return None
            ok = self._place(name, item, fs) if item.file else self._step(name, item, fs)
            if not ok:
                return False
        return self._gate(name)

    def _place(self, name: str, item: Item, fs: ServerFold) -> bool:
        from sane.fleet.run import remote_sha256
        from sane.fleet.ssh import upload
        from sane.ops.create_file import create_file

        spec = item.file
        assert spec is not None
        server = self.servers[name]
        digest = self.loaded.file_digests[item.index]
        attempt = len(fs.attempts.get((item.key, "do"), [])) + 1
        self.note("item_started", server=name, item=item.key, phase="do", attempt=attempt)
        started = time.perf_counter()
        try:
            path = self._path_on(name, spec.path)
            if remote_sha256(server, path) == digest:
                action = "unchanged"
            else:
                backup = self.run(
                    name,
                    item,
                    "backup",
                    attempt,
                    remote.backup_script(self.deploy_id, item.index, path),
                    60.0,
                )
                if not backup["ok"]:
                    raise errors.RemoteOperationFailed(
                        f"could not keep the old {path}: {backup['output'][-300:]}", path=path
                    )
                pane = open_server_pane(self.ctx, server).pane_id
                create_file(
                    self.ctx,
                    path,
                    self.contents[item.index],
                    pane=pane,
                    mode=int(spec.mode, 8) if spec.mode else None,
                    parents=True,
                    expected_sha256=digest,
                    side_channel=lambda path, data: upload(server, path, data),
                )
                action = "sent"
            out: dict[str, Any] = {
                "ok": True,
                "status": "completed",
                "action": action,
                "sha256": digest,
            }
        except errors.SaneError as exc:
            if _local_failure(exc):
                raise
            out = _failure(exc, None)
        out["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        self.note(
            "item_finished",
            server=name,
            item=item.key,
            phase="do",
            attempt=attempt,
            **out,
            **_settles(item, "do", out["ok"]),
        )
        if out["ok"]:
            self.note("item_done", server=name, item=item.key, action=out["action"])
            return True
        self.note(
            "item_failed",
            server=name,
            item=item.key,
            reason=f"{spec.path}: {out['error']['message']}",
        )
        return False

    def _path_on(self, name: str, path: str) -> str:
        from sane.fleet.ssh import path_on

        return path_on(self.servers[name], path, self.homes)

    def _step(self, name: str, item: Item, fs: ServerFold) -> bool:
        step = item.step
        assert step is not None
        earlier = fs.attempts.get((item.key, "do"), [])
        attempt = len(earlier)
        applied = bool(earlier) and earlier[-1]["ok"]
        last: dict[str, Any] = earlier[-1] if earlier else {}
        while True:
            if not applied:
                if attempt > step.retries:
                    self.note(
                        "item_failed",
                        server=name,
                        item=item.key,
                        reason=_reason(step.name, "run", last),
                    )
                    return False
                attempt += 1
                last = self.run(name, item, "do", attempt, step.run, step.timeout)
                if not last["ok"]:
                    continue
            if step.check is not None:
                last = self.run(name, item, "check", attempt, step.check, step.timeout)
                if not last["ok"]:
                    applied = False
                    if attempt > step.retries:
                        self.note(
                            "item_failed",
                            server=name,
                            item=item.key,
                            reason=_reason(step.name, "check", last),
                        )
                        return False
                    continue
            self.note("item_done", server=name, item=item.key)
            return True

    def _gate(self, name: str) -> bool:
        gate = self.plan.health
        if gate is None:
            return True
        from sane.poll import poll

        self.note("gate_started", server=name, until=gate.until)
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def passes() -> bool:
            ok, detail = remote.health_passes(self.servers[name], gate.until, self.plan.env)
            seen.update(detail)
            return ok

        try:
            ok = bool(poll(passes, gate.timeout, first=min(0.05, gate.interval), cap=gate.interval))
        except errors.SaneError as exc:
            ok, seen = False, {"error": exc.to_dict()}
        why = ", ".join(f"{key} {seen[key]}" for key in ("status", "reason") if seen.get(key))
        detail = f"health gate {gate.until!r} " + (
            "passed" if ok else f"not met within {gate.timeout:g}s ({why or 'no answer'})"
        )
        self.note(
            "gate_finished",
            server=name,
            ok=ok,
            detail=detail,
            waited_ms=round((time.monotonic() - started) * 1000, 3),
            health=seen,
        )
        return ok

    # -- backward --------------------------------------------------------------------

    def compensate(self, name: str) -> str:
        """Undo what ``name`` applied, newest first; its final state."""
        fs = self.state.servers[name]
        for key in fs.to_undo():
            item = self.by_key[key]
            if item.file is not None:
                try:
                    path = self._path_on(name, item.file.path)
                except errors.SaneError as exc:
                    self.note("undo_failed", server=name, item=key, reason=exc.message)
                    continue
                command = remote.restore_script(self.deploy_id, item.index, path)
                timeout = 60.0
            elif item.step is not None and item.step.undo is not None:
                command, timeout = item.step.undo, item.step.timeout
            else:
                self.note("undo_failed", server=name, item=key, reason="the step has no undo")
                continue
            out = self.run(name, item, "undo", 1, command, timeout)
            if out["ok"]:
                self.note("item_undone", server=name, item=key)
            else:
                self.note("undo_failed", server=name, item=key, reason=_reason(key, "undo", out))
        state = "rollback_failed" if fs.undo_failed else "rolled_back"
        self.note("server_state", server=name, state=state)
        return state

    # -- whole deploy ----------------------------------------------------------------

    def recover(self) -> None:
        """Learn how the runs a killed process left behind ended (see ``remote``)."""
        for name, fs in self.state.servers.items():
            for (key, phase), started in list(fs.in_flight.items()):
                run_id = started.get("run_id")
                deadline = time.monotonic() + max(0.0, started.get("deadline_at", 0) - time.time())
                result = remote.recover_run(self.ctx, run_id, deadline) if run_id else None
                if result is None and run_id:
                    # A durable run's record exists before its command is typed.
                    self.note("item_not_started", server=name, item=key, phase=phase, run_id=run_id)
                    continue
                if result is not None:
                    out = remote.outcome(result)
                else:  # a file transfer: placed (its content is there) or done again
                    out = self._transfer_outcome(name, key)
                item = self.by_key.get(key)
                self.note(
                    "item_finished",
                    server=name,
                    item=key,
                    phase=phase,
                    attempt=started.get("attempt", 1),
                    recovered=True,
                    **out,
                    **(_settles(item, phase, out["ok"]) if item is not None else {}),
                )
                if run_id:
                    forget_run(self.ctx, run_id)
                if not out["ok"] or item is None:
                    continue
                if phase == "undo":
                    self.note("item_undone", server=name, item=key)
                elif (
                    phase == "do" and item.step is not None and item.step.check is None
                ) or phase == "check":
                    self.note("item_done", server=name, item=key)

    def _transfer_outcome(self, name: str, key: str) -> dict[str, Any]:
        """How a file transfer a killed process left in flight ended: the file holds the
        plan's content (``create_file`` renames it into place whole), or it does not and
        the next forward pass places it again (its backup is on the server, so an undo
        is right either way)."""
        from sane.fleet.run import remote_sha256

        item = self.by_key.get(key)
        lost = {
            "ok": False,
            "status": "unknown",
            "exit_code": None,
            "reason": "the deploying process died during the transfer",
        }
        if item is None or item.file is None:
            return lost
        digest = self.loaded.file_digests[item.index]
        try:
            placed = remote_sha256(self.servers[name], self._path_on(name, item.file.path))
        except errors.SaneError:
            return lost
        if placed != digest:
            return lost
        return {"ok": True, "status": "completed", "action": "sent", "sha256": digest}

    def forward_all(self) -> None:
        # Servers a killed process left half way go on first (even past an abort:
        # they were under way when it came), then the strategy's batches.
        underway = [
            n
            for n, fs in self.state.servers.items()
            if fs.state is None and (fs.touched or fs.done)
        ]
        self._parallel(underway, self._forward_one)
        for batch in batches(self.loaded, self.names):
            self._check_abort()
            if self.abort.is_set():
                break
            pending = [n for n in batch if self.state.servers[n].state is None]
            self._parallel(pending, self._forward_one)
        if self.abort.is_set() and self.plan.policy.rollback == "all":
            touched = [
                n
                for n, fs in self.state.servers.items()
                if fs.state not in ("rolled_back", "rollback_failed") and fs.to_undo()
            ]
            self._parallel(touched, self.compensate)

    def _forward_one(self, name: str) -> None:
        fs = self.state.servers[name]
        underway = fs.touched or bool(fs.done)
        if self.abort.is_set() and (not underway or self.plan.policy.rollback == "all"):
            return
        ok = fs.failed is None and self.forward(name)
        if ok:
            self.note("server_state", server=name, state="deployed")
            return
        if ok is None:
            return  # stopped by a `rollback: all` abort: undone with the others
        self._check_abort()
        if self.plan.policy.rollback == "none":
            self.note("server_state", server=name, state="failed", reason=fs.reason)
        else:
            self.compensate(name)

    def _check_abort(self) -> None:
        """Stop starting servers when the canary failed, when policy says every failure
        takes all back, or when too many failed."""
        with self.lock:
            failed = [n for n, fs in self.state.servers.items() if fs.failed is not None]
            if self.abort.is_set() or not failed:
                return
            policy, total = self.plan.policy, len(self.names)
            canaries = batches(self.loaded, self.names)[0]
            if self.plan.strategy.kind == "canary" and set(failed) & set(canaries):
                reason = "the canary failed"
            elif policy.rollback == "all":
                reason = f"{failed[0]} failed and policy.rollback is all"
            elif len(failed) * 100 > policy.max_fail_percentage * total:
                reason = (
                    f"{len(failed)} of {total} servers failed "
                    f"(max_fail_percentage {policy.max_fail_percentage:g})"
                )
            else:
                return
            self.abort.set()
        self.note("aborting", reason=reason)

    def rollback_all(self) -> None:
        names = [n for n, fs in self.state.servers.items() if fs.to_undo()]
        self._parallel(names, self.compensate)

    def _parallel(self, names: list[str], work: Callable[[str], object]) -> None:
        if not names:
            return
        bounded_map(work, names, self.plan.strategy.max_parallel)

    def finish(self) -> Event:
        for name, fs in self.state.servers.items():
            if fs.state is None and not fs.done:
                self.note("server_state", server=name, state="untouched")
        return self.note("deploy_finished", status=aggregate(self.state))


def _settles(item: Item, phase: str, ok: bool) -> dict[str, bool]:
    """What a run's ``item_finished`` line says of its item, on that same line: a run
    that ends well applies its item (a file's transfer, a step's run when it has no
    check, its check) or undoes it (its undo). The ``item_done`` / ``item_undone`` line
    that follows says it again; a process killed between the two lines lost the second,
    so a rollback skipped a step that ran (or undid one twice) and ``status`` did not
    count it."""
    if not ok:
        return {}
    if phase == "undo":
        return {"undone": True}
    if phase == "check" or (
        phase == "do" and (item.file is not None or (item.step and item.step.check is None))
    ):
        return {"applied": True}
    return {}


def _failure(exc: errors.SaneError, run_id: str | None) -> dict[str, Any]:
    status = "unreachable" if isinstance(exc, errors.ConnectionFailed) else "error"
    return {
        "ok": False,
        "status": status,
        "exit_code": None,
        "run_id": run_id,
        "output": "",
        "error": exc.to_dict(),
    }


def _reason(what: str, phase: str, out: dict[str, Any]) -> str:
    if out.get("error"):
        return f"{what} {phase}: {out['error']['message']}"
    if out.get("status") == "completed":
        tail = (out.get("output") or "").strip().splitlines()[-1:] or [""]
        return f"{what} {phase} exited {out.get('exit_code')}: {tail[0][:200]}"
    return f"{what} {phase} ended {out.get('status')}" + (
        f": {out['reason']}" if out.get("reason") else ""
    )


def aggregate(state: DeployFold) -> str:
    states = [fs.state or "in_progress" for fs in state.servers.values()]
    deployed = states.count("deployed")
    if states and deployed == len(states):
        return "completed"
    if deployed:
        return "partial"
    touched = [s for s in states if s != "untouched"]
    if touched and all(s == "rolled_back" for s in touched):
        return "rolled_back"
    if not touched and any(e.get("event") == "rollback_started" for e in state.sessions):
        # A rollback of a deploy killed before it changed anything: nothing is left
        # applied, so the rollback did what was asked (before: "failed").
        return "rolled_back"
    return "failed"
