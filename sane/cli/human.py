"""Output for a person at a terminal: tables, ``[server]``-prefixed output, colours and a
one-line summary, instead of the JSON document.

``sane.cli._emit`` decides who is reading: a terminal on stdout with neither ``--json``
nor ``--jq`` is a person, and gets this view of the *same* document the JSON would have
carried (the exit status is unchanged). Through a pipe nothing here runs, so agents and
scripts see exactly the JSON contract. Each command with a better view than the generic
one has it in ``VIEWS`` (keyed by its command path, e.g. ``("fleet", "run")``); any other
command's document gets a generic rendering of its fields, so a new command is readable
without code here. Everything a server said is shown through ``sane.visible`` (escape
sequences as text, never sent to the terminal).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sane.visible import visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

Doc = Mapping[str, Any]

# Set by the click-free front door (its commands run without a click context).
_fast_path: tuple[str, ...] | None = None
# Set once a live display has already printed the servers' output (sane.cli._stream).
output_shown = False

# Document fields that only make sense to a program (the envelope).
_ENVELOPE = ("ok", "schema_version")

STATUS_STYLES = {
    "completed": "green",
    "healthy": "green",
    "connected": "green",
    "ok": "green",
    "created": "green",
    "replaced": "green",
    "unchanged": "green",
    "deployed": "green",
    "running": "yellow",
    "waiting_input": "yellow",
    "degraded": "yellow",
    "disconnected": "dim",
    "partial": "yellow",
    "rolled_back": "magenta",
}


def set_command_path(path: tuple[str, ...]) -> None:
    """The command a click-free front door is running (``sane.cli.main``)."""
    global _fast_path
    _fast_path = path


def command_path() -> tuple[str, ...]:
    """The words naming the running command (``("fleet", "run")``), from the front door
    or click's context; ``()`` when neither knows."""
    if _fast_path is not None:
        return _fast_path
    click = sys.modules.get("click")
    ctx = click.get_current_context(silent=True) if click is not None else None
    names: list[str] = []
    while ctx is not None:
        if ctx.parent is None:  # the program: `sane` adds nothing, `sane-run-command` does
            root = (ctx.command.name or "").removesuffix("-cli")
            if root not in ("cli", "sane"):
                names.append(root)
        else:
            names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False, soft_wrap=False)


def show(doc: Doc) -> None:
    """A successful document (or a run's, whatever its status) for a person."""
    console = _console()
    view = VIEWS.get(command_path(), generic_view)
    view(doc, console)


def show_error(doc: Doc, status: int) -> None:
    """An error document for a person: what failed, why, and the code to look up; a
    run's error (``--check``) shows the run first."""
    from rich.text import Text

    if "run_id" in doc and "output" in doc:
        show_run_output(doc, _console())
    console = _console(stderr=True)
    error = doc["error"]
    line = Text()
    line.append("error", style="bold red")
    line.append(f" [{visible(error['code'])}] ", style="red")
    line.append(visible(error["message"]))
    console.print(line)
    details = error.get("details") or {}
    for key, value in details.items():
        if key in ("output", "hint", "help") or value in (None, "", [], {}):
            continue
        console.print(Text(f"  {key}: {_cell(value)}", style="dim"))
    hint = details.get("hint") or details.get("help")
    if hint:
        console.print(Text(f"  {visible(hint)}", style="cyan"))
    console.print(Text(f"exit status {status}; --json for the whole document", style="dim"))


# ---- the pieces every view is made of ------------------------------------------------


def _cell(value: Any) -> str:
    """One value as table text: lists joined, mappings as key=value, nothing as '-'."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        if "code" in value and "message" in value:  # an error body
            return f"{visible(value['code'])}: {visible(value['message'])}"
        return " ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return visible(value)


def _styled(value: Any, style: str | None = None) -> Text:
    from rich.text import Text

    text = _cell(value)
    return Text(text, style=style if style is not None else STATUS_STYLES.get(text, ""))


def _table(title: str | None, columns: Sequence[str]) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _seconds(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _summary(console: Console, text: str, good: bool) -> None:
    from rich.text import Text

    console.print(Text(("✓ " if good else "✗ ") + text, style="green" if good else "red"))


def _print_prefixed(console: Console, name: str, output: str) -> None:
    """A server's output, each line after a coloured ``[name]``."""
    from rich.text import Text

    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        text = Text(f"[{visible(name)}] ", style="cyan")
        text.append(visible(line))
        console.print(text, soft_wrap=True)


# ---- views ---------------------------------------------------------------------------


def show_run_output(doc: Doc, console: Console) -> None:
    """What the command printed, as it printed it (control characters made visible)."""
    if doc.get("output_base64") is not None:
        console.print(
            f"({doc.get('output_bytes')} bytes of binary output: --json has them as output_base64)",
            style="dim",
        )
    elif doc.get("output"):
        lines = str(doc["output"]).split("\n")
        if lines[-1] == "":  # the last line's newline (one is added where it was missing)
            lines.pop()
        console.file.flush()
        sys.stdout.write("".join(visible(line) + "\n" for line in lines))
        sys.stdout.flush()
    if doc.get("truncated"):
        console.print(
            f"(output cut in the middle; the whole of it: "
            f"{visible(doc.get('full_output_path') or '-')})",
            style="dim",
        )


def run_view(doc: Doc, console: Console) -> None:
    """run-command, run wait/input/interrupt: the output, then how the run ended."""
    show_run_output(doc, console)
    status, run_id = doc["status"], visible(doc["run_id"])
    took = _seconds(doc.get("duration_ms"))
    where = f"pane {visible(doc.get('pane'))}, run {run_id}, {took}"
    if status == "completed":
        _summary(console, f"exit {doc['exit_code']} ({where})", doc["exit_code"] == 0)
    elif status == "running":
        console.print(
            f"… still running ({where}): follow it with `sane run wait {run_id}` "
            f"or stop it with `sane run interrupt {run_id}`",
            style="yellow",
        )
    elif status == "waiting_input":
        prompt = visible(doc.get("prompt") or "")
        console.print(
            f"? waiting for input at {prompt!r} ({where}): answer with "
            f"`sane run input {run_id} TEXT` (`-` reads it from stdin)",
            style="yellow",
            markup=False,
        )
    else:
        _summary(console, f"{status}, exit {_cell(doc.get('exit_code'))} ({where})", False)


def fleet_run_view(doc: Doc, console: Console) -> None:
    """``[server]``-prefixed output per server, a table of how each ended, one summary."""
    for result in doc["results"]:
        if result.get("output") and not output_shown:
            _print_prefixed(console, result["server"], result["output"])
    table = _table(None, ["server", "status", "exit", "time", "error"])
    for result in doc["results"]:
        error = result.get("error") or {}
        table.add_row(
            _styled(result["server"], ""),
            _styled(
                "completed" if result["ok"] else result["status"], None if result["ok"] else "red"
            ),
            _styled(result.get("exit_code"), "" if result["ok"] else "red"),
            _styled(_seconds(result["finished_ms"] - result["started_ms"]), "dim"),
            _styled(f"{error.get('code')}: {error.get('message')}" if error else None, "red"),
        )
    console.print(table)
    _counts_summary(console, doc, len(doc["results"]))


def _counts_summary(console: Console, doc: Doc, total: int) -> None:
    ok = sum(1 for r in doc.get("results", []) if r.get("ok"))
    problems = {
        k: v
        for k, v in (doc.get("counts") or {}).items()
        if v and k not in ("total", "ok", "completed")
    }
    extra = "".join(f", {v} {k}" for k, v in problems.items())
    took = f" in {_seconds(doc['duration_ms'])}" if "duration_ms" in doc else ""
    _summary(console, f"{ok} of {total} servers ok{extra}{took}", ok == total)


def fleet_results_view(doc: Doc, console: Console) -> None:
    """fleet put/detect: one row per server with its scalar fields."""
    _rows_table(console, None, doc["results"])
    _counts_summary(console, doc, len(doc["results"]))


def connect_view(doc: Doc, console: Console) -> None:
    """``sane up`` / ``connect``: each server's pane, or why it could not connect."""
    _rows_table(console, None, doc["servers"])
    ok = sum(1 for r in doc["servers"] if r.get("ok"))
    total = len(doc["servers"])
    _summary(
        console,
        f"{ok} of {total} servers connected (session {visible(doc.get('session'))})",
        ok == total,
    )


def servers_view(doc: Doc, console: Console) -> None:
    """``sane server list``: who is registered, how to reach them, how they were."""
    table = _table(None, ["server", "address", "tags", "connection", "health", "checked"])
    for server in doc["servers"]:
        address = visible(server["host"])
        if server.get("user"):
            address = f"{visible(server['user'])}@{address}"
        if server.get("port"):
            address = f"{address}:{server['port']}"
        history = server.get("health_history") or {}
        table.add_row(
            _styled(server["name"], "bold"),
            _styled(address, ""),
            _styled(server.get("tags"), "dim"),
            _styled(server["connection"]),
            _styled(history.get("last_status")),
            _styled(history.get("checked_at"), "dim"),
        )
    console.print(table)
    n = len(doc["servers"])
    if n == 0:
        console.print("no servers: `sane server add NAME --host HOST`", style="yellow")
    else:
        connected = sum(1 for s in doc["servers"] if s["connection"] == "connected")
        console.print(f"{n} server{'s' if n != 1 else ''}, {connected} connected", style="dim")


def health_view(doc: Doc, console: Console) -> None:
    """``sane health`` (and ``health wait``): each server's status, why, and the query."""
    reports = doc["servers"]
    with_query = any("query" in r for r in reports)
    columns = ["server", "status", "reason", "version", "latency"]
    table = _table(None, [*columns, "query"] if with_query else columns)
    for report in reports:
        data = report.get("data") or {}
        row = [
            _styled(report["server"], "bold"),
            _styled(report["status"], STATUS_STYLES.get(report["status"], "red")),
            _styled(report.get("reason") or report.get("error"), "dim"),
            _styled(data.get("version"), ""),
            _styled(f"{report['latency_ms']:.1f} ms" if "latency_ms" in report else None, "dim"),
        ]
        if with_query:
            row.append(_styled(report.get("query"), ""))
        table.add_row(*row)
    console.print(table)
    if "met" in doc:
        waiting = ", ".join(visible(s) for s in doc.get("waiting_for", []))
        _summary(
            console,
            f"condition {'met' if doc['met'] else 'not met'}: "
            f"{visible(doc.get('until'))}"
            + ("" if doc["met"] else f" (still waiting for {waiting})"),
            bool(doc["met"]),
        )
        return
    counts = doc.get("counts") or {}
    text = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no servers"
    _summary(console, text, bool(doc.get("all_healthy")))


def panes_view(doc: Doc, console: Console) -> None:
    """``sane list-panes``."""
    table = _table(None, ["pane", "where", "command", "cwd", "role", "server", "run"])
    for pane in doc["panes"]:
        where = f"{visible(pane['session'])}:{pane['window_index']}.{pane['pane_index']}"
        table.add_row(
            _styled(pane["pane_id"], "bold"),
            _styled(where, ""),
            _styled(pane["current_command"], "red" if pane.get("dead") else ""),
            _styled(pane["cwd"], "dim"),
            _styled(pane.get("sane_role"), ""),
            _styled(pane.get("sane_server"), ""),
            _styled(pane.get("run_id"), "yellow"),
        )
    console.print(table)
    if not doc["panes"]:
        console.print(
            "no panes yet: sane opens its own (session sane, window local) on the "
            "first run-command",
            style="yellow",
        )


def watch_view(doc: Doc, console: Console) -> None:
    """``sane watch --once``: the counts, then every server, those in trouble first
    (the order of the live view, ``sane.fleet.watch``)."""
    if "servers" not in doc:
        generic_view(doc, console)
        return
    from rich.text import Text

    from sane.fleet.watch import rank, summary

    rows = sorted(doc["servers"], key=lambda r: (rank(r), r["server"]))
    for line in summary(rows):
        console.print(Text(line, style="bold"))
    table = _table(None, ["server", "host", "connection", "health", "version", "run"])
    for row in rows:
        health = row.get("health")
        if health == "unknown" and row.get("health_reason"):
            health = f"unknown ({visible(row['health_reason'])})"
        table.add_row(
            _styled(row["server"], "bold"),
            _styled(row["host"], ""),
            _styled(row["connection"]),
            _styled(health),
            _styled(row.get("version"), ""),
            _styled(row.get("run_id"), "yellow"),
        )
    console.print(table)


def _rows_table(console: Console, title: str | None, rows: Sequence[Any]) -> None:
    """A list of objects as a table of their scalar fields (nested ones left to --json)."""
    if not rows or not all(isinstance(r, Mapping) for r in rows):
        console.print(f"{title + ': ' if title else ''}{_cell(list(rows))}")
        return
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            nested = isinstance(value, (Mapping, list)) and key != "error"
            if key not in columns and not nested and key != "output":
                columns.append(key)
    table = _table(title, columns)
    for row in rows:
        table.add_row(*(_styled(row.get(c), "red" if c == "error" else None) for c in columns))
    console.print(table)


def generic_view(doc: Doc, console: Console) -> None:
    """Any document: its scalar fields as ``key: value``, its lists of objects as
    tables, its objects one level deep."""
    from rich.text import Text

    fields = {k: v for k, v in doc.items() if k not in _ENVELOPE}
    for key, value in fields.items():
        if isinstance(value, Mapping) or (
            isinstance(value, list) and value and isinstance(value[0], Mapping)
        ):
            continue
        line = Text(f"{key}: ", style="bold")
        line.append(_styled(value))
        console.print(line)
    for key, value in fields.items():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            _rows_table(console, key, value)
        elif isinstance(value, Mapping):
            console.print(Text(f"{key}:", style="bold"))
            for sub, item in value.items():
                console.print(Text(f"  {sub}: {_cell(item)}"))


def deploy_view(doc: Doc, console: Console) -> None:
    """A deploy's report: each server's state and why, then how the deploy ended."""
    if not isinstance(doc.get("servers"), list) or "deploy_id" not in doc:
        generic_view(doc, console)
        return
    table = _table(None, ["server", "state", "reason", "applied", "undone"])
    for server in doc["servers"]:
        state = server.get("state")
        table.add_row(
            _styled(server["server"], "bold"),
            _styled(state, STATUS_STYLES.get(str(state), "red")),
            _styled(server.get("reason"), "dim"),
            _styled(len(server.get("applied") or []), ""),
            _styled(len(server.get("undone") or []), ""),
        )
    console.print(table)
    status = str(doc.get("status"))
    took = f" in {_seconds(doc['duration_ms'])}" if doc.get("duration_ms") else ""
    _summary(
        console,
        f"deploy {visible(doc['deploy_id'])}: {visible(status)}{took} "
        f"(sane deploy status {visible(doc['deploy_id'])})",
        status == "completed",
    )


def demo_view(doc: Doc, console: Console) -> None:
    """``sane demo``: the story was told on stderr; here, whether every check held."""
    if not isinstance(doc.get("checks"), list):
        generic_view(doc, console)
        return
    checks = doc["checks"]
    failed = [c for c in checks if not c.get("ok")]
    for check in failed:
        _summary(console, f"{visible(check.get('check'))}: {_cell(check.get('detail'))}", False)
    _summary(
        console,
        f"{len(checks) - len(failed)} of {len(checks)} checks of the story held",
        not failed,
    )


def json_view(doc: Doc, console: Console) -> None:
    """Documents that are JSON by nature (``sane schema``): indented and coloured."""
    import json

    from rich.json import JSON

    fields = {k: v for k, v in doc.items() if k not in _ENVELOPE}
    console.print(JSON(json.dumps(fields, ensure_ascii=False)), soft_wrap=True)


VIEWS: dict[tuple[str, ...], Callable[[Doc, Console], None]] = {
    ("schema",): json_view,
    ("demo",): demo_view,
    ("deploy", "run"): deploy_view,
    ("deploy", "status"): deploy_view,
    ("deploy", "resume"): deploy_view,
    ("deploy", "rollback"): deploy_view,
    ("run-command",): run_view,
    ("run", "wait"): run_view,
    ("run", "input"): run_view,
    ("run", "interrupt"): run_view,
    ("fleet", "run"): fleet_run_view,
    ("fleet", "put"): fleet_results_view,
    ("fleet", "detect"): fleet_results_view,
    ("up",): connect_view,
    ("connect",): connect_view,
    ("server", "list"): servers_view,
    ("health",): health_view,
    ("health", "wait"): health_view,
    ("list-panes",): panes_view,
    ("watch",): watch_view,
}
