"""Progress of long operations: a live display for people, ``--stream`` JSON lines
for programs.

When a person reads stdout (a terminal, no ``--json``/``--jq``), events become a live
table (rich) of servers and what each is doing, with each server's output lines
printed above it as ``[web1] ...``, and the result follows as a table
(``sane.cli.human``). Otherwise, with ``--stream``, every event is one JSON line,
flushed at once, so an agent reading the pipe sees it when it happens, and the final
JSON document follows on stdout.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sane.visible import markup_safe

Event = dict[str, Any]


@contextmanager
def progress(stream: bool) -> Iterator[Callable[[Event], None] | None]:
    """The event callback: for a person at a terminal a live display (with or without
    ``--stream``), taken down before the result is shown; for a program, JSON lines
    with ``--stream`` and None without it."""
    from sane.cli._emit import for_person

    if for_person():
        from sane.cli import human

        live = LiveProgress()
        try:
            yield live
        finally:
            live.close()
            human.output_shown = live.live is not None
    elif not stream:
        yield None
    else:
        yield _json_line


def _json_line(event: Event) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# A call that answers sooner shows no spinner (no flicker on a quick command).
SPINNER_AFTER = 0.5


class LiveProgress:
    """A rich live table, one row per server, refreshed on every event; drawn from the
    first event on. Until then, and for commands that have no events, a spinner once
    the call has taken SPINNER_AFTER seconds. Both are gone before the result shows."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(file=sys.stdout)
        self.rows: dict[str, dict[str, str]] = {}
        self.partial: dict[str, str] = {}
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.live: Any = None
        self.spinner: Any = None
        self.closed = False
        self.timer = threading.Timer(SPINNER_AFTER, self._spin)
        self.timer.daemon = True
        self.timer.start()

    def _spin(self) -> None:
        with self.lock:
            if self.live is None and not self.closed:
                self.spinner = self.console.status("working…")
                self.spinner.start()

    def _stop_spinner(self) -> None:
        self.timer.cancel()
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None

    def __call__(self, event: Event) -> None:
        with self.lock:
            if self.live is None:
                from rich.live import Live

                self._stop_spinner()
                self.live = Live(
                    self._table(), console=self.console, refresh_per_second=8, transient=True
                )
                self.live.start()
            self._apply(event)
            self.live.update(self._table())

    def _apply(self, event: Event) -> None:
        kind = event.get("event", "")
        name = event.get("server")
        if kind == "output" and name:
            self._print_lines(name, event.get("data", ""))
            return
        if not name:
            if kind == "aborting":
                self.console.print(f"[bold red]aborting:[/] {markup_safe(event.get('reason'))}")
            return
        row = self.rows.setdefault(name, {"state": "waiting", "doing": "", "result": ""})
        if kind == "started":
            row["state"] = "running"
        elif kind == "finished":
            self._print_lines(name, "", flush=True)
            ok = event.get("ok")
            row["state"] = "ok" if ok else str(event.get("status"))
            code = event.get("exit_code")
            row["result"] = (
                f"exit {code}"
                if code is not None
                else str((event.get("error") or {}).get("code", ""))
            )
        elif kind == "item_started":
            row["state"] = "undoing" if event.get("phase") == "undo" else "deploying"
            row["doing"] = f"{event.get('item')} ({event.get('phase')})"
        elif kind == "item_finished":
            mark = "ok" if event.get("ok") else f"failed ({event.get('status')})"
            row["result"] = f"{event.get('item')} {event.get('phase')}: {mark}"
            if not event.get("ok") and event.get("output"):
                self._print_lines(name, event["output"], flush=True)
        elif kind == "gate_started":
            row["doing"] = "health gate"
        elif kind == "gate_finished":
            row["result"] = str(event.get("detail", ""))
        elif kind == "server_state":
            row["state"] = str(event.get("state"))
            row["doing"] = ""
        elif kind == "status":  # health wait: a server's health changed
            row["state"] = str(event.get("status"))
            row["result"] = str(event.get("reason") or "")

    def _print_lines(self, name: str, data: str, flush: bool = False) -> None:
        text = self.partial.pop(name, "") + data
        lines = text.split("\n")
        rest = lines.pop()
        if flush and rest:
            lines.append(rest)
            rest = ""
        if rest:
            self.partial[name] = rest
        for line in lines:  # server text: shown, never interpreted (markup, escapes)
            self.console.print(
                f"[cyan]\\[{markup_safe(name)}][/] {markup_safe(line)}",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )

    def _table(self) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        table = Table(title=f"sane  {elapsed:5.1f}s", title_justify="left", expand=False)
        for column in ("server", "state", "doing", "last result"):
            table.add_column(column)
        colours = {
            "ok": "green",
            "deployed": "green",
            "healthy": "green",
            "running": "yellow",
            "deploying": "yellow",
            "degraded": "yellow",
            "undoing": "magenta",
            "rolled_back": "magenta",
        }
        for name, row in self.rows.items():
            colour = colours.get(
                row["state"], "red" if row["state"] not in ("waiting", "untouched") else "white"
            )
            table.add_row(
                markup_safe(name),
                f"[{colour}]{markup_safe(row['state'])}[/]",
                markup_safe(row["doing"]),
                markup_safe(row["result"]),
            )
        return table

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self._stop_spinner()
            for name in list(self.partial):
                self._print_lines(name, "", flush=True)
            if self.live is not None:
                self.live.stop()
