"""Per-server events of a fleet command, as they happen: the one source of progress.

Every command that works on many servers (``fleet run``, ``up``/``connect``, ``fleet
put``, ``fleet detect``, ``health``) tells its listener the same three things: how many
servers it is about to work on (``begin``), when one is started, and each server's
result as soon as it has one (``finished``, the result's own fields). The library never
prints: the CLI turns these into ``--stream`` JSON lines or a live display on a
terminal (``sane.cli._stream``), the MCP server into progress notifications
(``sane.handlers``), a library caller into whatever it likes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

Event = dict[str, Any]
OnEvent = Callable[[Event], None]


class FleetEvents:
    """The events of one fleet operation, sent to ``on_event`` one at a time (the
    workers' threads take turns: a listener never sees two at once). With no listener
    nothing is built."""

    def __init__(self, on_event: OnEvent | None, operation: str, total: int) -> None:
        self.on_event = on_event
        self.origin = time.perf_counter()
        self._lock = threading.Lock()
        self.emit({"event": "begin", "operation": operation, "total": total})

    def ms(self) -> float:
        """Milliseconds since the operation began (the results' ``started_ms`` clock)."""
        return round((time.perf_counter() - self.origin) * 1000, 3)

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            with self._lock:
                self.on_event(event)

    def started(self, server: str) -> float:
        """``server`` is being worked on; its ``started_ms``."""
        at = self.ms()
        self.emit({"event": "started", "server": server, "at_ms": at})
        return at

    def finished(self, result: Mapping[str, Any]) -> None:
        """A server's result (it names the server), as the final document will hold it."""
        if self.on_event is not None:
            self.emit({"event": "finished", **result})


def failed(event: Mapping[str, Any]) -> bool:
    """Whether a ``finished`` event is a failure a person should see named: a result
    that is not ``ok``; for a health read (no ``ok``), any status but healthy."""
    if "ok" in event:
        return not event["ok"]
    return event.get("status") != "healthy"


def describe(event: Mapping[str, Any]) -> str:
    """A ``finished`` event in a few words: its status (or action), exit code, and for
    a failure the error's code and message or the health reason. Raw server text:
    whoever shows it to a person escapes it (``sane.visible``)."""
    word = event.get("status") or event.get("action")
    if word is None:
        word = "ok" if event.get("ok") else "failed"
    text = str(word)
    if event.get("exit_code") is not None:
        text += f" (exit {event['exit_code']})"
    error, reason = event.get("error"), event.get("reason")
    if isinstance(error, Mapping) and failed(event):
        text += f" ({error.get('code')}: {error.get('message')})"
    elif isinstance(error, str) and reason:  # a health read: the code, the reason
        text += f" ({error}: {reason})"
    elif reason:
        text += f" ({reason})"
    return text
