"""The orchestrator session's layout: server panes grouped several to a window.

Why: one window per server is 1,000 windows at 1,000 servers, a status line and a
window list nobody can read. So a server's pane is made in a window of its own (panes
for many servers are made at once, each under its own lock only), and once a connect
is done the lone ones are moved (``join-pane``) into group windows of up to
:data:`PANES_PER_WINDOW`, stacked: every pane keeps its 200x50 (the window grows to
fit; a person's smaller terminal shows the part around the active pane) and its
border names its server (``pane-border-status top``). sane never finds a pane by its
window: always by its ``@sane_server`` option (``sane server pane NAME``).

Moving panes is cosmetic for sane: a pane keeps its id, its options and its process,
so a run going on in it goes on. A move that fails (the pane closed meanwhile) leaves
that pane where it was and nothing else.
"""

from __future__ import annotations

import contextlib

from sane import errors
from sane.ops.context import Context
from sane.tmux import panes
from sane.tmux.command import quote
from sane.tmux.structure import PANE_HEIGHT, PANE_WIDTH, creation_lock

PANES_PER_WINDOW = 10
OPT_GROUP = "@sane_group"  # window option: "1" on a group window
GROUP_NAME = "servers"  # a group window's name (each pane's border names its server)
ROLE_SSH = "ssh"
# A pane's rows in a group window: its own and the border line above it.
ROWS_PER_PANE = PANE_HEIGHT + 1
_FIELDS = ("pane_id", "window_id", "window_panes", "window_height", panes.OPT_ROLE, OPT_GROUP)


Command = list[str]


def _group_options(window: str) -> list[Command]:
    """A lone server window made the first of a group: marked, named ``servers``, and
    every pane's border shows its server."""
    return [
        ["set-option", "-w", "-t", window, OPT_GROUP, "1"],
        ["rename-window", "-t", window, GROUP_NAME],
        ["set-option", "-w", "-t", window, "pane-border-status", "top"],
        ["set-option", "-w", "-t", window, "pane-border-format", " #{" + panes.OPT_SERVER + "} "],
    ]


def _fit(window: str, count: int) -> list[Command]:
    """The window sized so each of its ``count`` stacked panes is 200x50."""
    return [
        ["resize-window", "-t", window, "-x", str(PANE_WIDTH), "-y", str(count * ROWS_PER_PANE)],
        ["select-layout", "-t", window, "even-vertical"],
    ]


def plan(records: list[list[str]], per_window: int) -> list[list[Command]]:
    """The tmux command lists that group the lone server panes of a listing (each
    list a unit: tmux stops a list at its first failure, so one closed pane spoils
    only its own move), and give a group window that lost panes its 200x50 panes
    back. Pure: the listing in, the commands out."""
    groups: dict[str, tuple[int, int]] = {}  # group window -> (panes, height)
    lone: list[tuple[str, str]] = []  # (pane id, its window id), in listing order
    for pane, window, in_window, height, role, group in records:
        if group == "1":
            groups[window] = (int(in_window), int(height))
        elif role == ROLE_SSH and in_window == "1":
            lone.append((pane, window))
    lists: list[list[Command]] = [
        _fit(window, count)
        for window, (count, height) in groups.items()
        if height != count * ROWS_PER_PANE
    ]
    room = [(window, count) for window, (count, _) in groups.items() if count < per_window]
    for pane, window in lone:
        if not room:
            lists.append([*_group_options(window), *_fit(window, 1)])
            room.append((window, 1))
        else:
            target, count = room[0]
            resize, layout = _fit(target, count + 1)
            join = ["join-pane", "-d", "-v", "-s", pane, "-t", f"{target}.{{bottom}}"]
            lists.append([resize, join, layout])
            room[0] = (target, count + 1)
        if room[0][1] >= per_window:
            room.pop(0)
    return lists


def group_windows(ctx: Context) -> None:
    """Move the session's lone server panes into group windows (see the module docs):
    one listing, then every move sent at once and their answers awaited together."""
    with creation_lock(ctx.server):  # two processes grouping at once would overfill
        try:
            listing = ctx.tmux(
                ["list-panes", "-s", "-t", f"={ctx.session_name}", "-F", panes.format_of(_FIELDS)]
            )
        except (errors.SessionNotFound, errors.PaneNotFound, errors.TmuxServerNotRunning):
            return
        lists = plan(panes.split_records(listing, len(_FIELDS)), PANES_PER_WINDOW)
        client = ctx.hub.any_client()
        if not lists or client is None:  # (connect_many always has its client)
            return
        from sane.tmux.control import attach_detach_lock

        # A window closing is a notification to every control client: under the lock
        # that keeps it from meeting an attach (tmux 3.3a, see attach_detach_lock).
        with attach_detach_lock(ctx.server):
            replies = [
                client.send(*(" ".join(quote(word) for word in argv) for argv in commands))
                for commands in lists
            ]
            for reply in replies:
                with contextlib.suppress(errors.TmuxError):
                    client.result(reply)
