"""health.json on every server: read, validate, record, wait for a condition.

Reads go over each server's ssh ControlMaster (a side channel: the server's pane is
left alone, and a read costs milliseconds once the pane is up). A file that is
missing, unreadable or not a valid health document makes that server ``unknown``
with the reason: never a crash, never a guessed status. Each check updates a local
history per server (last status, last ok time, failure streak, read latency) in
``$SANE_HOME/health-history.json``, written atomically under a lock.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from sane import bounded, errors
from sane.fleet import jqsafe
from sane.fleet.events import FleetEvents, OnEvent
from sane.fleet.registry import Server
from sane.fleet.ssh import classify, run_remote, timeout_error
from sane.parallel import bounded_map
from sane.paths import private_dir
from sane.state import file_lock, write_atomic

STATUSES = ("healthy", "degraded", "unhealthy")
READ_TIMEOUT = 15.0
PARALLEL = 10  # servers read at once unless told (``sane health --max-parallel``)


class HealthDocument(BaseModel):
    """What a health.json must hold; any other fields are kept as they are."""

    model_config = ConfigDict(extra="allow")

    status: Literal["healthy", "degraded", "unhealthy"]
    version: str | None = None
    checked_at: str | None = None


def _remote_path(path: str) -> str:
    """A shell word for ``path`` on the server, with ``~/`` meaning the login's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# A health document is a few hundred bytes: past this it is not one (a symlink to a
# log, /dev/zero), and reading on would only fill memory.
HEALTH_MAX = 64 * 1024


def read_one(server: Server, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
    """One server's health: status (or ``unknown`` + reason), data, latency. Only what
    ``cat`` printed is parsed (``run_remote``): a login's rc files that print make no
    difference.

    Bounded, per server: only a regular file is read (a FIFO, a device, a directory,
    or a symlink to one is ``unknown``: not a regular file), at most HEALTH_MAX bytes,
    nesting at most 64 levels, within ``timeout``; the server's own limits are not
    trusted (the bytes it sends are counted here)."""
    started = time.perf_counter()
    report: dict[str, Any] = {
        "server": server.name,
        "path": server.health_path,
        "status": "unknown",
        "reason": None,
        "data": None,
    }
    path = _remote_path(server.health_path)
    script = (
        f'p={path}; if [ -f "$p" ]; then exec head -c {HEALTH_MAX + 1} -- "$p"; '
        f"elif [ -e \"$p\" ]; then echo 'sane: not a regular file' >&2; exit 3; "
        f'else exec cat -- "$p"; fi'
    )
    try:
        result = run_remote(server, script, timeout=timeout, limit=HEALTH_MAX + 1)
    except subprocess.TimeoutExpired:
        report["reason"] = f"no answer within {timeout:g}s"
        return _finish(report, started)
    except errors.InvalidArgument:
        report["reason"] = f"too large: over {HEALTH_MAX} bytes"
        return _finish(report, started)
    if result.status == 255:
        error = classify(server, result.stderr, status=result.status)
        report.update(reason=error.message, error=error.code)
    elif result.status == 3 and "sane: not a regular file" in result.stderr:
        report["reason"] = "not a regular file (a device, FIFO or directory, or a link to one)"
    elif result.status != 0 or result.stdout is None:
        missing = "no such file" in result.stderr.lower()
        report["reason"] = (
            "missing"
            if missing
            else (f"unreadable: {result.stderr.strip()[-300:] or f'status {result.status}'}")
        )
    elif len(result.stdout) > HEALTH_MAX:
        report["reason"] = f"too large: over {HEALTH_MAX} bytes"
    else:
        try:
            doc = HealthDocument.model_validate(bounded.load_json(result.stdout, "health.json"))
        except errors.InvalidArgument as exc:
            report["reason"] = f"malformed: {exc.message}"
        except (ValueError, ValidationError) as exc:
            report["reason"] = f"malformed: {str(exc).splitlines()[0][:300]}"
        else:
            report.update(status=doc.status, data=doc.model_dump(mode="json"))
    return _finish(report, started)


def _finish(report: dict[str, Any], started: float) -> dict[str, Any]:
    report["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return report


def query(expression: str, value: Any) -> Any:
    """First result of a jq expression, for --query (contained: sane.fleet.jqsafe)."""
    answer = jqsafe.evaluate(expression, [value])[0]
    if answer.error is not None:
        raise errors.InvalidArgument(f"jq: {answer.error}", expression=expression)
    return answer.value


class Condition:
    """A jq condition on one server's health (``health wait --until``, a deploy's health
    gate): it must give a boolean, and unknown health never meets it.

    Why so strict: a condition that gives anything else is a mistake (``.version = "x"``,
    jq's assignment, gives the document, which is truthy), and taking it as met let a
    typo pass a gate; a server whose health nobody could read must not count as
    anything (``.status != "unhealthy"`` was met by servers with no health.json)."""

    def __init__(self, expression: str, env: dict[str, str] | None = None) -> None:
        self.expression = expression
        self.env = env or {}
        jqsafe.compile_check(expression, self.env)
        # A sample of what it will see: a wrong kind of answer fails before any connection.
        self._value(
            jq_input({"server": "", "status": "unknown", "reason": None, "data": None}),
            fail_on_error=False,
        )

    def _value(self, document: dict[str, Any], fail_on_error: bool = True) -> bool:
        value, error = jqsafe.evaluate(self.expression, [document], self.env)[0]
        if error is not None:  # a jq runtime error (or the time limit) on this document
            return False
        if not isinstance(value, bool):
            raise errors.InvalidArgument(
                f"the condition {self.expression!r} gives {json.dumps(value)[:80]}, not "
                "true or false (compare with ==, !=, <, >; = assigns in jq)",
                expression=self.expression,
                value=value,
            )
        return value

    def met(self, report: dict[str, Any]) -> bool:
        """Whether ``report`` (a ``read_one`` answer) meets the condition."""
        if report["status"] == "unknown":
            return False
        return self._value(jq_input(report))


def jq_input(report: dict[str, Any]) -> dict[str, Any]:
    """What a jq condition sees for one server: its health.json plus sane's verdict."""
    data = report["data"] or {}
    return {
        **data,
        "status": report["status"],
        "server": report["server"],
        "reason": report["reason"],
    }


def check(
    home: Path,
    servers: list[Server],
    query_expr: str | None = None,
    max_parallel: int = PARALLEL,
    timeout: float = READ_TIMEOUT,
    on_event: OnEvent | None = None,
) -> dict[str, Any]:
    """Read every server's health in parallel (each read within ``timeout``); record
    history; summarise. ``query_expr`` runs per server: one server's document that
    makes it fail (or run too long) gives that server a ``query_error``, not the call.
    ``on_event``: each server's read as it comes (``sane.fleet.events``)."""
    if query_expr is not None:
        jqsafe.compile_check(query_expr)  # a bad expression fails before any connection
    from sane.fleet.limits import raise_own_open_files_limit

    raise_own_open_files_limit()
    events = FleetEvents(on_event, "health", len(servers))

    def one(server: Server) -> dict[str, Any]:
        events.started(server.name)
        report = read_one(server, timeout)
        events.finished(report)
        return report

    reports = bounded_map(one, servers, max_parallel)
    history = record(home, reports)
    answers = (
        jqsafe.evaluate(query_expr, [jq_input(r) for r in reports])
        if query_expr is not None
        else []
    )
    for index, report in enumerate(reports):
        report["history"] = history.get(report["server"])
        if query_expr is not None:
            report["query"] = answers[index].value
            if answers[index].error is not None:
                report["query_error"] = answers[index].error
    counts = {
        status: sum(r["status"] == status for r in reports) for status in (*STATUSES, "unknown")
    }
    return {
        "servers": reports,
        "counts": counts,
        "all_healthy": bool(reports) and counts["healthy"] == len(reports),
    }


def record(home: Path, reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fold reports into the local history; return the new entries by server."""
    path = private_dir(home) / "health-history.json"
    with file_lock(path):
        history = _load_history(path)
        now = _now()
        for report in reports:
            entry = history.setdefault(report["server"], {"last_ok_at": None, "failure_streak": 0})
            healthy = report["status"] == "healthy"
            entry.update(
                last_status=report["status"], checked_at=now, read_latency_ms=report["latency_ms"]
            )
            if healthy:
                entry.update(last_ok_at=now, failure_streak=0)
            else:
                entry["failure_streak"] = int(entry.get("failure_streak", 0)) + 1
        write_atomic(path, json.dumps(history, indent=2, sort_keys=True).encode() + b"\n")
    return {r["server"]: history[r["server"]] for r in reports}


def read_history(home: Path) -> dict[str, dict[str, Any]]:
    """Each server's history entry as last recorded, for showing (``sane server list``).

    Read without the lock (the file is only ever replaced whole) and without setting a
    corrupt file aside: that is for the next ``record``; here it reads as no history."""
    try:
        history = json.loads((home / "health-history.json").read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(history, dict):
        return {}
    return {name: entry for name, entry in history.items() if isinstance(entry, dict)}


def _load_history(path: Path) -> dict[str, dict[str, Any]]:
    """The history, or a fresh one when the file is missing or corrupt.

    A corrupt history (not JSON, or not the shape sane writes) is never trusted, and
    never destroyed either: it is renamed to ``health-history.json.corrupt-<time>``
    for a person to look at, and the history starts again.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("read", path, exc) from exc
    try:
        history = json.loads(raw)
        if isinstance(history, dict) and all(
            isinstance(entry, dict) and isinstance(entry.get("failure_streak", 0), int)
            for entry in history.values()
        ):
            return history
    except ValueError:
        pass
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    try:
        path.rename(path.with_name(f"{path.name}.corrupt-{stamp}"))
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("set aside the corrupt", path, exc) from exc
    return {}


def set_health(server: Server, status: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Write a server's health.json atomically (temp file + rename on the server)."""
    try:
        doc = HealthDocument.model_validate(
            {**fields, "status": status, "checked_at": fields.get("checked_at", _now())}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise errors.InvalidArgument(f"health field {field}: {first['msg']}", field=field) from None
    data = json.dumps(doc.model_dump(mode="json"), indent=2).encode() + b"\n"
    target = _remote_path(server.health_path)
    script = (
        f'p={target}; mkdir -p -- "$(dirname -- "$p")" && '
        't="$p.sane-$$.tmp" && cat > "$t" && mv -f -- "$t" "$p"'
    )
    try:
        result = run_remote(server, script, data=data, timeout=READ_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise timeout_error(server, READ_TIMEOUT) from None
    if result.status == 255:
        raise classify(server, result.stderr, status=255)
    if result.status != 0:
        raise errors.TransferFailed(
            f"{server.name}: writing {server.health_path} failed: {result.stderr.strip()}",
            server=server.name,
        )
    return doc.model_dump(mode="json")


def wait(
    home: Path,
    servers: list[Server],
    until: str,
    mode: Literal["all", "any"],
    timeout: float,
    interval: float,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll until ``until`` (jq, per server) holds for all / any servers, or timeout.

    Emits an event whenever a server's status changes. Cheap by design: one ``cat``
    per server per interval over existing connections.
    """
    condition = Condition(until)
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while True:
        left = deadline - time.monotonic()
        result = check(home, servers, timeout=max(1.0, min(READ_TIMEOUT, left)))
        met = {r["server"]: condition.met(r) for r in result["servers"]}
        for report in result["servers"]:
            name = report["server"]
            if last.get(name) != report["status"]:
                last[name] = report["status"]
                if on_event is not None:
                    on_event(
                        {
                            "event": "status",
                            "server": name,
                            "status": report["status"],
                            "reason": report["reason"],
                        }
                    )
        done = all(met.values()) if mode == "all" else any(met.values())
        remaining = deadline - time.monotonic()
        if done or remaining <= 0:
            return {
                "met": done,
                "until": until,
                "mode": mode,
                "waiting_for": sorted(n for n, ok in met.items() if not ok),
                "servers": result["servers"],
            }
        time.sleep(min(interval, remaining))  # the polling interval the caller asked for
