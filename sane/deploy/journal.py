"""The deploy journal: every transition appended and fsynced before and after it happens.

``$SANE_HOME/deploys/<id>/journal.jsonl`` is the only truth about a deploy: the report
``sane deploy`` prints, ``sane deploy status`` and the starting point of ``resume`` and
``rollback`` are all folded from it, so they cannot disagree. A crash can at worst
leave a torn last line (the write of that line never returned): readers skip it and
the next writer cuts it off before appending, so a torn line never hides the lines
written after it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sane import errors

JOURNAL = "journal.jsonl"
RESERVE = "journal.reserve"
# Enough for the events of the steps under way on a few dozen servers (a step's
# event keeps up to 8 KiB of its output) when the disk fills in the middle.
RESERVE_BYTES = 512 * 1024


class Journal:
    """Appends events to one deploy's journal; safe to share between threads.

    Each line is written whole or not at all: a short write is continued, and a write
    that fails half way (a full disk) is cut back off before the error is raised, or,
    if even that fails, before the next append. So a full ``$SANE_HOME`` stops a deploy
    with ``state_invalid`` but never leaves a torn line between two good ones, and
    ``status``/``resume``/``rollback`` work again once there is space."""

    def __init__(self, directory: Path, reserve: int = 0) -> None:
        from sane.paths import open_private

        self.path = directory / JOURNAL
        self.reserve_path = directory / RESERVE
        self._lock = threading.Lock()
        self._torn = False
        self.on_reserve = False  # the disk filled up: the reserve was given up for it
        if reserve:
            self._make_reserve(reserve)
        try:
            self._fd = open_private(str(self.path), os.O_RDWR | os.O_CREAT | os.O_APPEND)
        except OSError as exc:
            raise errors.StateError(
                f"cannot open {self.path}: {exc.strerror}", path=str(self.path)
            ) from exc
        try:
            _cut_torn_tail(self._fd)
        except OSError as exc:
            os.close(self._fd)
            raise errors.StateError(
                f"cannot open {self.path}: {exc.strerror}", path=str(self.path)
            ) from exc

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "at": round(time.time(), 6), **fields}
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
        with self._lock:
            try:
                self._write_line(line)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._free_reserve():
                    from sane.state import os_failure

                    raise os_failure("append to", self.path, exc) from exc
                try:  # the disk is full: this line goes in the space set aside
                    self._write_line(line)
                except OSError as again:
                    from sane.state import os_failure

                    raise os_failure("append to", self.path, again) from again
        return record

    def _write_line(self, line: bytes) -> None:
        """Append ``line`` whole, or (an OSError) leave the journal as it was."""
        end = -1
        try:
            if self._torn:
                _cut_torn_tail(self._fd)
                self._torn = False
            end = os.fstat(self._fd).st_size
            view = memoryview(line)
            while view:  # O_APPEND: every piece goes to the end, after the last
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            self._take_back(end)
            raise

    def _make_reserve(self, size: int) -> None:
        """Space set aside beside the journal, given up when the disk fills so the
        steps under way can still be recorded (see ``on_reserve``)."""
        from sane.paths import open_private

        try:
            if os.path.getsize(self.reserve_path) >= size:
                return
        except OSError:
            pass
        try:
            fd = open_private(str(self.reserve_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                block = b"\0" * 65536
                for _ in range(0, size, len(block)):
                    os.write(fd, block)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(self.reserve_path)
            from sane.state import os_failure

            raise os_failure("set space aside for", self.path, exc) from exc

    def _free_reserve(self) -> bool:
        try:
            os.unlink(self.reserve_path)
        except OSError:
            return False
        self.on_reserve = True
        return True

    def drop_reserve(self) -> None:
        """The deploy ended: its space is not needed any more."""
        with contextlib.suppress(OSError):
            os.unlink(self.reserve_path)

    def _take_back(self, end: int) -> None:
        """Cut off what a failed append wrote (to ``end``, the size before it)."""
        try:
            if end >= 0:
                os.ftruncate(self._fd, end)
                os.fsync(self._fd)
            else:
                self._torn = True
        except OSError:
            self._torn = True  # cut at the next append (_cut_torn_tail)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_torn_tail(fd: int) -> None:
    """Drop a last line the crashed writer never finished."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    tail_start = max(0, size - 65536)
    tail = os.pread(fd, size - tail_start, tail_start)
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    if cut < 0 and tail_start > 0:
        raise errors.StateError("journal has a last line longer than 64 KiB and no end")
    os.ftruncate(fd, tail_start + cut + 1 if cut >= 0 else 0)


def read_events(directory: Path) -> list[dict[str, Any]]:
    """The journal's events; a torn last line is left out, any other bad line is an error."""
    path = directory / JOURNAL
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise errors.DeployNotFound(f"no deploy journal at {path}", path=str(path)) from None
    except OSError as exc:
        raise errors.StateError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    lines = raw.split(b"\n")
    complete, torn = lines[:-1], lines[-1]
    events: list[dict[str, Any]] = []
    for number, line in enumerate(complete, 1):
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or "event" not in event:
                raise ValueError("not an event object")
        except ValueError as exc:
            raise errors.StateError(
                f"{path}: line {number} is corrupt ({exc}); the journal was changed by "
                "something other than sane",
                path=str(path),
                line=number,
            ) from None
        events.append(event)
    del torn  # a line whose write never finished: that transition is not known to have happened
    return events


# -- folding -------------------------------------------------------------------------


@dataclass
class ServerFold:
    """What the journal says about one server."""

    name: str
    state: str | None = None
    reason: str | None = None
    done: list[str] = field(default_factory=list)  # items applied, in order
    undone: list[str] = field(default_factory=list)  # items compensated, in order
    undo_failed: list[str] = field(default_factory=list)
    # Items whose run a killed process left behind and whose result was then lost
    # (``recovered``, and no exit status: lost, interrupted at its deadline, a transfer
    # not known to have finished): they may have run, so a rollback undoes them too.
    uncertain: list[str] = field(default_factory=list)
    failed: str | None = None  # the item (or "health") that failed
    in_flight: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    attempts: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def touched(self) -> bool:
        return bool(self.log or self.in_flight)

    def to_undo(self) -> list[str]:
        """Applied items (and uncertain ones) not yet compensated, newest first."""
        maybe = [item for item in self.uncertain if item not in self.done]
        return [item for item in reversed(self.done + maybe) if item not in self.undone]


@dataclass
class DeployFold:
    deploy_id: str
    started: dict[str, Any]
    servers: dict[str, ServerFold]
    finished: dict[str, Any] | None
    sessions: list[dict[str, Any]]  # deploy_started, resumed, rollback_started events
    aborting: str | None = None


def fold(events: list[dict[str, Any]]) -> DeployFold:
    if not events:  # killed between creating the journal and its first line
        raise errors.DeployNotFound(
            "the deploy was stopped before it started: its journal holds no event, so nothing ran"
        )
    if events[0]["event"] != "deploy_started":
        raise errors.StateError("the journal does not start with deploy_started")
    start = events[0]
    servers = {name: ServerFold(name) for name in start["servers"]}
    result = DeployFold(start["deploy_id"], start, servers, None, [start])
    for event in events[1:]:
        kind = event["event"]
        if kind in ("resumed", "rollback_started"):
            result.sessions.append(event)
            result.finished = None
            continue
        if kind == "deploy_finished":
            result.finished = event
            continue
        if kind == "aborting":
            result.aborting = event.get("reason") or "aborted"
            continue
        server = servers.get(event.get("server", ""))
        if server is None:
            continue
        _fold_server(server, kind, event)
    return result


def _fold_server(server: ServerFold, kind: str, event: dict[str, Any]) -> None:
    item = event.get("item", "")
    key = (item, event.get("phase", ""))
    if kind == "item_started":
        server.in_flight[key] = event
    elif kind == "item_not_started":
        server.in_flight.pop(key, None)
    elif kind == "item_finished":
        server.in_flight.pop(key, None)
        server.attempts.setdefault(key, []).append(event)
        server.log.append(event)
        if event.get("applied"):  # see engine._settles: the same as the next line
            _move(item, server.done, server.undone)
        elif (
            event.get("recovered")
            and event.get("status") != "completed"  # an exit status is a known failure
            and item not in server.uncertain
        ):
            server.uncertain.append(item)
        if event.get("undone"):
            _move(item, server.undone, server.undo_failed)
    elif kind == "item_done":
        _move(item, server.done, server.undone)
    elif kind == "item_failed":
        server.failed = item
        server.reason = event.get("reason")
    elif kind == "item_undone":
        _move(item, server.undone, server.undo_failed)
    elif kind == "undo_failed":
        if item not in server.undo_failed:
            server.undo_failed.append(item)
    elif kind == "gate_finished":
        server.log.append(event)
        if not event.get("ok"):
            server.failed = "health"
            server.reason = event.get("detail")
    elif kind == "server_state":
        server.state = event["state"]
        if event.get("reason"):
            server.reason = event["reason"]


def _move(item: str, into: list[str], out_of: list[str]) -> None:
    if item not in into:
        into.append(item)
    if item in out_of:
        out_of.remove(item)
