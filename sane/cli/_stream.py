"""Progress of long operations: a live display for people, ``--stream`` JSON lines
for programs.

When a person reads stdout (a terminal, no ``--json``/``--jq``), events become a live
display (rich) of servers and what each is doing, with each server's output lines
printed above it as ``[web1] ...``, and the result follows as a table
(``sane.cli.human``). When stdout goes elsewhere (a file, a pipe, ``--json``) but
stderr is a terminal, a fleet command draws the same display there, without the
servers' output (the document holds it), and leaves a one-line summary: the document
on stdout is unchanged (``--quiet`` turns this off). With ``--stream``, every event is
one JSON line on stdout, flushed at once, so an agent reading the pipe sees it when it
happens, and the final JSON document follows.

Either display fits the terminal whatever the fleet's size: a count line (N/M done,
failed, running), every failure named on its own line as it happens, and only the
rows of servers still being worked on once all of them no longer fit.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from sane.fleet.events import describe, failed
from sane.visible import markup_safe, visible

Event = dict[str, Any]


@contextmanager
def progress(
    stream: bool, stderr_title: str | None = None
) -> Iterator[Callable[[Event], None] | None]:
    """The event callback: for a person at a terminal a live display (with or without
    ``--stream``), taken down before the result is shown; with ``stderr_title`` (the
    command, e.g. ``up``) the display on stderr, beside the JSON lines of
    ``--stream`` if asked; for a program, JSON lines with ``--stream`` and None
    without it."""
    from sane.cli._emit import for_person

    if for_person():
        from sane.cli import human

        live = LiveProgress(sys.stdout)
        try:
            yield live
        finally:
            live.close()
            human.output_shown = live.live is not None
        return
    display = (
        LiveProgress(sys.stderr, title=stderr_title, spinner=False, output=False)
        if stderr_title is not None
        else None
    )
    listeners = [f for f in (display, _json_line if stream else None) if f is not None]
    try:
        if not listeners:
            yield None
        elif len(listeners) == 1:
            yield listeners[0]
        else:

            def both(event: Event) -> None:
                for listener in listeners:
                    listener(event)

            yield both
    finally:
        if display is not None:
            display.close()


def _json_line(event: Event) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# A call that answers sooner shows no spinner (no flicker on a quick command).
SPINNER_AFTER = 0.5


# What a server is doing while a fleet operation (``begin``'s ``operation``) works on
# it; any other: running.
ACTIVE = {"connect": "connecting", "fleet_put": "sending", "health": "reading"}

# How often the live display is redrawn, and lines waiting above it printed.
REFRESH = 0.125


class LiveProgress:
    """A rich live display drawn from the first event on: a count line, and one row
    per server (state, what it does, last result) while they fit the terminal, else
    only the servers still being worked on. Failures are printed above it as they
    happen (``✗ web3: unreachable (...)``), and with ``output`` each server's output
    lines. Until the first event, and for commands that have no events, a spinner
    once the call has taken SPINNER_AFTER seconds (``spinner``). All of it is gone
    before the result shows; with a ``title`` (the display beside a document on
    stdout) a summary line stays.

    An event only updates counts and rows and queues lines: drawing is done by the
    display's own thread, REFRESH seconds apart, lines queued meanwhile printed at
    once. The fleet's workers hand their events over one at a time, so a listener
    that drew (tens of milliseconds for a table on a loaded machine) would hold every
    one of them: 1,000 servers would wait for their display."""

    def __init__(
        self,
        file: TextIO,
        title: str | None = None,
        spinner: bool = True,
        output: bool = True,
    ) -> None:
        from rich.console import Console

        self.console = Console(file=file)
        self.title = title
        self.output = output
        self.rows: dict[str, dict[str, str]] = {}
        self.partial: dict[str, str] = {}
        self.pending: list[str] = []  # rich markup lines to print above the display
        self.total: int | None = None
        self.active = "running"  # what a server being worked on is doing (ACTIVE)
        self.done = 0
        self.failures = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.live: Any = None
        self.drawer: threading.Thread | None = None
        self.spinner: Any = None
        self.closed = threading.Event()
        self.timer = threading.Timer(SPINNER_AFTER, self._spin)
        self.timer.daemon = True
        if spinner:
            self.timer.start()

    def _spin(self) -> None:
        with self.lock:
            if self.live is None and not self.closed.is_set():
                self.spinner = self.console.status("working…")
                self.spinner.start()

    def _stop_spinner(self) -> None:
        self.timer.cancel()
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None

    def __call__(self, event: Event) -> None:
        with self.lock:
            if self.closed.is_set():
                return
            if self.live is None:
                from rich.live import Live

                self._stop_spinner()
                # The document (or --stream's lines) goes to stdout: never through
                # the display, even when both are on one terminal.
                self.live = Live(
                    get_renderable=self._view,
                    console=self.console,
                    auto_refresh=False,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self.live.start()
                self.drawer = threading.Thread(target=self._draw, name="sane-display", daemon=True)
                self.drawer.start()
            self._apply(event)

    def _draw(self) -> None:
        while not self.closed.wait(REFRESH):
            self._flush()

    def _flush(self) -> None:
        """Print the lines queued since the last time, then redraw the display."""
        with self.lock:
            lines, self.pending = self.pending, []
        if lines:
            self.console.print("\n".join(lines), highlight=False, soft_wrap=True)
        self.live.refresh()

    def _apply(self, event: Event) -> None:
        kind = event.get("event", "")
        name = event.get("server")
        if kind == "begin":
            self.total = int(event.get("total") or 0)
            self.active = ACTIVE.get(str(event.get("operation")), "running")
            return
        if kind == "output" and name:
            if self.output:
                self._print_lines(name, event.get("data", ""))
            return
        if not name:
            if kind == "aborting":
                self.pending.append(f"[bold red]aborting:[/] {markup_safe(event.get('reason'))}")
            return
        row = self.rows.setdefault(
            name, {"state": "waiting", "doing": "", "result": "", "done": ""}
        )
        if kind == "started":
            row["state"] = self.active
        elif kind == "finished":
            self._finished(name, row, event)
        elif kind == "item_started":
            row["state"] = "undoing" if event.get("phase") == "undo" else "deploying"
            row["doing"] = f"{event.get('item')} ({event.get('phase')})"
        elif kind == "item_finished":
            mark = "ok" if event.get("ok") else f"failed ({event.get('status')})"
            row["result"] = f"{event.get('item')} {event.get('phase')}: {mark}"
            if not event.get("ok") and event.get("output") and self.output:
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

    def _finished(self, name: str, row: dict[str, str], event: Event) -> None:
        """A server's result: counted, its row done, and a failure named above."""
        if self.output:
            self._print_lines(name, "", flush=True)
        bad = failed(event)
        self.done += 1
        self.failures += bad
        row["done"] = "yes"
        row["state"] = str(event.get("status") or ("failed" if bad else "ok"))
        code, error = event.get("exit_code"), event.get("error")
        row["result"] = (
            f"exit {code}"
            if code is not None
            else str(error.get("code", "") if isinstance(error, dict) else error or "")
        )
        if bad:  # server text: shown, never interpreted (markup, escapes); one line
            line = f"✗ {visible(name)}: {visible(describe(event))}"
            if len(line) > self.console.width:
                line = line[: max(1, self.console.width - 1)] + "…"
            self.pending.append(f"[red]{markup_safe(line)}[/]")

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
            self.pending.append(f"[cyan]\\[{markup_safe(name)}][/] {markup_safe(line)}")

    def counts(self) -> str:
        """``37/400 done · 3 failed · 5 running`` (what is known so far); empty for
        events without per-server results (a deploy's steps, health changes)."""
        if self.total is None and not self.done:
            return ""
        total = self.total if self.total is not None else len(self.rows)
        rows = list(self.rows.values())  # a copy: the events' thread adds to it
        running = sum(1 for r in rows if not r["done"] and r["state"] != "waiting")
        parts = [f"{self.done}/{total} done"]
        if self.failures:
            parts.append(f"{self.failures} failed")
        if running:
            parts.append(f"{running} {self.active}")
        return " · ".join(parts)

    def _view(self) -> Any:
        """The live part: the count line, then the rows that fit. Called by rich's
        refresh thread: it reads copies of what the events' thread changes."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        name = f"sane {visible(self.title)}" if self.title else "sane"
        heading = Text(f"{name}  {elapsed:5.1f}s  {self.counts()}", no_wrap=True)
        heading.truncate(self.console.width, overflow="ellipsis")
        table = Table(expand=False)
        for column in ("server", "state", "doing", "last result"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        colours = {
            "ok": "green",
            "completed": "green",
            "deployed": "green",
            "healthy": "green",
            "running": "yellow",
            **{word: "yellow" for word in ACTIVE.values()},
            "deploying": "yellow",
            "degraded": "yellow",
            "undoing": "magenta",
            "rolled_back": "magenta",
        }
        # Title, header, borders and a line for the hidden: what else a row costs.
        room = max(1, self.console.height - 7)
        shown = list(self.rows.items())  # a copy: the events' thread adds to it
        if len(shown) > room:
            going = [(n, r) for n, r in shown if not r["done"] and r["state"] != "waiting"]
            table.caption = f"… {len(shown) - min(room, len(going))} more not shown"
            table.caption_justify = "left"
            shown = going[:room]
        for server, row in shown:
            colour = colours.get(
                row["state"], "red" if row["state"] not in ("waiting", "untouched") else "white"
            )
            table.add_row(
                markup_safe(server),
                f"[{colour}]{markup_safe(row['state'])}[/]",
                markup_safe(row["doing"]),
                markup_safe(row["result"]),
            )
        return Group(heading, table)

    def close(self) -> None:
        with self.lock:
            self.closed.set()
            self._stop_spinner()
            for name in list(self.partial):
                self._print_lines(name, "", flush=True)
        if self.live is None:
            return
        if self.drawer is not None:
            self.drawer.join()
        self._flush()
        self.live.stop()
        if self.title is not None and self.counts():  # beside a document: its summary
            good = self.done and not self.failures
            self.console.print(
                f"[{'green' if good else 'red'}]{'✓' if good else '✗'}[/] sane "
                f"{markup_safe(self.title)}: {self.counts()} in "
                f"{time.monotonic() - self.started:.1f}s",
                highlight=False,
            )
