"""The orchestrator session at 1,000 servers (issue 17): server panes grouped several to
a window, each keeping its 200x50, found by their server option whatever the window.
Real sshd on loopback, a real tmux server per test."""

from __future__ import annotations

from typing import Any

import pytest

from sane.fleet import layout
from sane.fleet.panes import connect_many, down, server_panes
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.poll import poll

from .test_fleet import register


def _windows(ctx: Context) -> dict[str, list[tuple[str, str]]]:
    """Per window id: its panes as (server option, WIDTHxHEIGHT)."""
    lines = ctx.tmux(
        [
            "list-panes",
            "-s",
            "-t",
            "=sane",
            "-F",
            "#{window_id} #{@sane_server} #{pane_width}x#{pane_height}",
        ]
    )
    found: dict[str, list[tuple[str, str]]] = {}
    for line in lines:
        window, server, size = line.split(" ")[:3]
        found.setdefault(window, []).append((server, size))
    return found


def test_server_panes_are_grouped_in_windows_of_fixed_size(
    sane_ctx: Context, ssh_fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three servers, two panes per window: one window holds s1 and s2 stacked, another
    s3, every pane 200x50; the orchestrator keeps its own window. Runs find each
    server's pane by its option; after down and up again the groups are made anew."""
    monkeypatch.setattr(layout, "PANES_PER_WINDOW", 2)
    servers = register(sane_ctx.home, ssh_fleet)
    reports = connect_many(sane_ctx, servers, max_parallel=3)
    assert all(r["ok"] for r in reports), reports
    groups = sorted(sorted(panes) for panes in _windows(sane_ctx).values() if panes[0][0] != "")
    # (which two share a window depends on which connected first)
    assert sorted(len(panes) for panes in groups) == [1, 2]
    assert {size for panes in groups for _, size in panes} == {"200x50"}
    # Each remote terminal hears of its pane's size from its ssh (SIGWINCH, then a
    # window-change message): a pane just moved settles at 50 rows a moment later.
    expected = [f"{s.name}\n50\n" for s in servers]

    def settled() -> list[str] | None:
        result = fleet_run(sane_ctx, servers, "echo $FLEET_HOST; tput lines", max_parallel=3)
        outputs = [r["output"] for r in result["results"]]
        return outputs if outputs == expected else None

    assert poll(settled, 15.0, first=0.1, cap=1.0) == expected
    assert sorted(server_panes(sane_ctx)) == ["s1", "s2", "s3"]
    assert down(sane_ctx, ["s2"]) == ["s2"]
    again = connect_many(sane_ctx, servers, max_parallel=3)
    assert all(r["ok"] for r in again), again
    sizes = {size for panes in _windows(sane_ctx).values() for s, size in panes if s}
    assert sizes == {"200x50"}
    assert sum(len(p) for p in _windows(sane_ctx).values()) == 4  # orchestrator + 3


def test_the_plan_fills_open_groups_first_and_refits_a_shrunk_one() -> None:
    """The layout's plan from a listing: a lone pane joins the group with room; when
    none has room the next lone window becomes a group; a group whose panes were
    closed gets its window fitted again (its panes back to 50 rows)."""
    rows = layout.ROWS_PER_PANE
    records = [
        ["%1", "@1", "1", "50", "orchestrator", ""],
        ["%2", "@2", "2", str(3 * rows), "ssh", "1"],  # a group that lost a pane
        ["%3", "@2", "2", str(3 * rows), "ssh", "1"],
        ["%4", "@4", "1", "50", "ssh", ""],
        ["%5", "@5", "1", "50", "ssh", ""],
        ["%6", "@6", "1", "50", "ssh", ""],
    ]
    lists = layout.plan(records, per_window=3)
    words = [[" ".join(c) for c in commands] for commands in lists]
    assert words[0] == [
        f"resize-window -t @2 -x 200 -y {2 * rows}",
        "select-layout -t @2 even-vertical",
    ]
    assert "join-pane -d -v -s %4 -t @2.{bottom}" in words[1]
    assert f"resize-window -t @2 -x 200 -y {3 * rows}" in words[1]
    assert words[2][:2] == [  # @2 is full: a new group
        "set-option -w -t @5 @sane_group 1",
        "rename-window -t @5 servers",
    ]
    assert "join-pane -d -v -s %6 -t @5.{bottom}" in words[3]
    assert len(words) == 4
