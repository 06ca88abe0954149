"""What sane needs to know about a pane, read in one tmux command."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from sane import errors

if TYPE_CHECKING:
    from sane.models import PaneInfo  # a plain dict at run time: no import on the hot path

# Pane user options sane keeps on the panes it drives (tmux stores them, so every
# sane process, and a person running `tmux show -p`, sees the same state).
OPT_ROLE = "@sane_role"
OPT_SERVER = "@sane_server"
OPT_SHELL_PID = "@sane_shell_pid"  # pid of the shell the runner was installed in
OPT_TOKEN = "@sane_token"  # tag of that shell's prompt marker
OPT_RUN = "@sane_run"  # id of the run in progress: the pane's busy flag
OPT_PIPED = "@sane_piped"  # the run whose output sane's pipe-pane records (sane.ops.run.pipe)
OPT_DONE = "@sane_done"  # the last runs that ended in their own call (sane.ops.run.done)
OPT_HOST_PID = "@sane_host_pid"  # that shell's pid on its own host ($$; remote for ssh)
OPT_SIDE_CHANNEL = "@sane_side_channel"  # argv (shell words) running a command on that host
OPT_SHELL_KIND = "@sane_shell"  # the kind of shell the runner was installed for (posix, fish)
# Which exec of that pid holds the runner (the IMAGE marker's digits; unset if unknown).
OPT_SHELL_IMAGE = "@sane_shell_image"
# Set on a server's pane that replaced one whose shell had ended (its ssh with it): the
# next run there says shell_restarted (the cd and variables of earlier runs are gone).
OPT_SHELL_NEW = "@sane_shell_new"
# How that shell's command line is checked for a person's text before sane types:
# "hold" (widgets, sane.protocol.editor), "screen"/"screen-vi" or "tty" (sane.ops.has_input).
OPT_EDITOR = "@sane_editor"
# The last line of that shell's prompt as last drawn ("screen" shells only).
OPT_PROMPT = "@sane_prompt"
# What yash draws after that on the same line: spaces, then its right prompt (else unset).
OPT_PROMPT_RIGHT = "@sane_prompt_right"
# Why the pane's shell is not the login shell, when sane replaced it (else empty).
OPT_SHELL_NOTE = "@sane_shell_note"

# Fields and records are delimited by strings no pane can contain: a per-process nonce.
# tmux prints a pane's current path (and a program's name) as it is, so a tab or a
# newline in a directory name split a tab- and line-delimited listing wrongly (a tab in
# a cwd crashed list-panes; a newline made every run of the session fail). Only this
# process knows the nonce, so no name can forge a separator.
_NONCE = os.urandom(6).hex()
FIELD_SEP = f"\x1f{_NONCE}-"
# (not \x1e: str.splitlines splits there; not a final ";": tmux's command separator)
RECORD_END = f"\x1f{_NONCE}+"


def format_of(fields: tuple[str, ...]) -> str:
    """A tmux format printing ``fields`` with sane's separators, the record's end last."""
    return FIELD_SEP.join("#{" + f + "}" for f in fields) + RECORD_END


def split_records(lines: list[str], count: int) -> list[list[str]]:
    """The records a :func:`format_of` format printed (tmux's output lines rejoined:
    a value may hold newlines), each as its ``count`` fields."""
    text = "\n".join(lines)
    records = []
    for chunk in text.split(RECORD_END)[:-1]:
        fields = chunk.removeprefix("\n").split(FIELD_SEP)
        if len(fields) != count:
            raise ValueError(f"unexpected pane record: {chunk!r}")
        records.append(fields)
    return records


_STATE_FIELDS = (
    "pane_id",
    "session_id",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "pane_pipe",
    "pane_in_mode",
    OPT_SHELL_PID,
    OPT_TOKEN,
    OPT_RUN,
    OPT_ROLE,
    OPT_SERVER,
    "pane_current_command",
    OPT_SHELL_KIND,
    OPT_SHELL_NEW,
    OPT_EDITOR,
    OPT_SHELL_NOTE,
)
STATE_FORMAT = format_of(_STATE_FIELDS)


class PaneState(NamedTuple):
    pane_id: str
    session_id: str
    pid: int | None
    dead: bool
    dead_status: int | None
    dead_signal: int | None
    piped: bool
    in_mode: bool
    shell_pid: int | None
    token: str | None
    # The busy flag's raw value (OPT_RUN): parse it with sane.ops.run.holder, the one
    # place that knows its shape (``run_id:pid:home``); None when the pane is free.
    busy_flag: str | None
    role: str | None
    server: str | None
    current_command: str
    shell_kind: str = "posix"  # sane.protocol.runner.SHELL_POSIX or SHELL_FISH
    shell_new: bool = False  # OPT_SHELL_NEW
    editor: str = ""  # sane.protocol.editor.EDITOR_HOLD or EDITOR_SCREEN ("" before takeover)
    shell_note: str = ""  # OPT_SHELL_NOTE

    @property
    def runner_installed(self) -> bool:
        return self.token is not None and self.shell_pid is not None and self.shell_pid == self.pid


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def parse_states(lines: list[str]) -> list[PaneState]:
    """Every pane state a listing with :data:`STATE_FORMAT` printed."""
    return [_state(f) for f in split_records(lines, len(_STATE_FIELDS))]


def _state(f: list[str]) -> PaneState:
    return PaneState(
        pane_id=f[0],
        session_id=f[1],
        pid=_int(f[2]),
        dead=f[3] == "1",
        dead_status=_int(f[4]),
        dead_signal=_int(f[5]),
        piped=f[6] == "1",
        in_mode=f[7] == "1",
        shell_pid=_int(f[8]),
        token=f[9] or None,
        busy_flag=f[10] or None,
        role=f[11] or None,
        server=f[12] or None,
        current_command=f[13],
        shell_kind=f[14] or "posix",
        shell_new=f[15] == "1",
        editor=f[16],
        shell_note=f[17],
    )


def read_state(run: Callable[[list[str]], list[str]], target: str) -> PaneState:
    """``run`` executes one tmux command (argv without ``tmux``) and returns stdout lines."""
    return read_state_text(run, target)[0]


def read_state_text(run: Callable[[list[str]], list[str]], target: str) -> tuple[PaneState, str]:
    """The pane's state and the text tmux printed for it (what :func:`if_unchanged`
    compares the pane's state with later)."""
    lines = run(["display-message", "-p", "-t", target, STATE_FORMAT])
    # tmux 3.3 answers an unknown target with an empty line and success.
    if not lines or not lines[0].startswith("%"):
        raise errors.PaneNotFound(f"can't find pane: {target}", pane=target)
    return parse_states(lines)[0], "\n".join(lines)


# The command that answers "the pane's state is no longer the one sane knew": an
# error naming a pane id no pane can have (tmux's are % and digits), so it fails
# whatever any client of the server does (a wait-for channel's error, used before, goes
# away once some client locks that channel, and the reply's blocks then shift).
STATE_CHANGED = "sane-pane-state-changed"
# (Quoted: a bare % in a command string starts one of tmux's directives.)
_STATE_CHANGED_COMMAND = f'select-pane -t "%{STATE_CHANGED}"'


def is_pane_id(target: str) -> bool:
    """Is ``target`` a pane id (``%`` and digits), which names one pane for the whole
    life of its tmux server, never another one later (unlike ``session:window.index``)?"""
    return len(target) > 1 and target[0] == "%" and target[1:].isascii() and target[1:].isdigit()


def comparable(text: str) -> bool:
    """Can :func:`if_unchanged` compare a pane's state with ``text``? Not when a value
    in it holds a line break (a shell note, a server name): a format cannot hold one, so
    the state must be read again instead. One definition for the run that decides
    whether to type with a known state and for the line that checks it."""
    return "\n" not in text and "\r" not in text


# Where a pane's screen stands: the cursor's place, how many lines scrolled off, the
# character under the cursor. Any key a shell echoes changes it, so a mark of it taken
# by tmux when sane saw a bare prompt tells, in tmux's own view, whether anything came
# on that line since (sane's control client may not have read that output yet: under
# load its reader lags behind the screen tmux keeps).
SCREEN_PLACE = "#{cursor_x}.#{cursor_y}.#{history_size}.#{cursor_character}"
OPT_SCREEN_PLACE = "@sane_screen_place"


def mark_screen_place(pane_id: str) -> str:
    """The tmux command keeping the pane's :data:`SCREEN_PLACE` as tmux sees it when it
    runs this (tmux expands it: ``-F``), for :class:`Unchanged`'s ``same_place``."""
    from sane.tmux.command import quote

    return f"set-option -p -F -t {pane_id} {OPT_SCREEN_PLACE} {quote(SCREEN_PLACE)}"


class Unchanged(NamedTuple):
    """What a line of :func:`if_unchanged` has tmux find still so before its commands
    run. A run types its first line with it (PaneChanged in sane.ops.run.command when
    it fails: nothing claimed or typed), one value from the state's read to the line."""

    state_text: str | None  # the pane's state as read before (read_state_text); None: not checked
    same_place: bool  # the screen still at the place mark_screen_place kept


def if_unchanged(pane_id: str, check: Unchanged, commands: list[str]) -> tuple[str, int] | None:
    """One tmux command running ``commands`` only if the pane is as ``check`` says: its
    state still ``check.state_text`` and, with ``check.same_place``, its screen still
    at the place :func:`mark_screen_place` kept; and the reply blocks tmux answers it
    with when they ran.

    tmux compares the whole state (every field of :data:`STATE_FORMAT`) and runs the
    commands in the same turn of its command queue, so they act on exactly the state a
    fresh read would have shown at that moment: a run typed this way needs no read of
    the state of its own before it (one round trip to tmux). Otherwise tmux answers
    with an error naming :data:`STATE_CHANGED`, nothing of ``commands`` done. A failing
    command among them ends them as in a plain line (its error ends the reply). None
    when the state's text cannot be written into a format (not :func:`comparable`)."""
    from sane.tmux.command import quote

    text, same_place = check
    conditions: list[str] = []
    if text is not None:
        if not comparable(text):
            return None
        # In a format, "#", "," and "}" are written "##", "#," and "#}".
        known = text.replace("#", "##").replace(",", "#,").replace("}", "#}")
        conditions.append(f"#{{==:{STATE_FORMAT},{known}}}")
    if same_place:
        conditions.append(f"#{{==:{SCREEN_PLACE},#{{{OPT_SCREEN_PLACE}}}}}")
    if not conditions:
        raise ValueError("if_unchanged: nothing to check")
    condition = conditions[0] if len(conditions) == 1 else "#{&&:" + ",".join(conditions) + "}"
    line = (
        f"if-shell -F -t {pane_id} {quote(condition)} {quote(' ; '.join(commands))}"
        f" {quote(_STATE_CHANGED_COMMAND)}"
    )
    return line, 1 + len(commands)


def state_changed(exc: errors.SaneError) -> bool:
    """Did a line of :func:`if_unchanged` find the pane not as its check said (its state
    changed, its screen moved, or the pane gone)? Nothing of its commands was done
    then."""
    return STATE_CHANGED in exc.message or "can't find" in exc.message


_INFO_FIELDS = (
    "pane_id",
    "session_name",
    "window_index",
    "window_name",
    "pane_index",
    "pane_current_command",
    "pane_current_path",
    "pane_width",
    "pane_height",
    "pane_active",
    "pane_dead",
    OPT_ROLE,
    OPT_SERVER,
    OPT_RUN,
    "pane_title",
)
INFO_FORMAT = format_of(_INFO_FIELDS)


def parse_infos(lines: list[str]) -> list[tuple[PaneInfo, str | None]]:
    """Every pane a listing with :data:`INFO_FORMAT` printed, each with its busy flag's
    raw value (``busy`` and ``run_id`` are left for the caller, who can tell whether
    that flag's run is over: sane.ops.run.busy)."""
    return [(_info(f), f[13] or None) for f in split_records(lines, len(_INFO_FIELDS))]


def _info(f: list[str]) -> PaneInfo:
    info: PaneInfo = {
        "pane_id": f[0],
        "session": f[1],
        "window_index": int(f[2]),
        "window_name": f[3],
        "pane_index": int(f[4]),
        "current_command": f[5],
        "cwd": f[6],
        "width": int(f[7]),
        "height": int(f[8]),
        "active": f[9] == "1",
        "dead": f[10] == "1",
        "sane_role": f[11] or None,
        "sane_server": f[12] or None,
        "busy": False,
        "run_id": None,
        "title": f[14],
    }
    return info
