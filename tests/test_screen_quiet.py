"""A screen-checked shell (dash, mksh, ...) whose pane printed nothing since the prompt
sane saw drawn after its last run is typed into without looking at the screen again
(issue #14, Performance: one tmux round trip less per run), and only then: a person's
keystroke (it echoes), or anything that may have hidden the pane's output from sane's
control client (the pane's window moved to another session and back), brings the
look back. Real tmux, real shells, keys typed with send-keys as a person types them."""

from __future__ import annotations

from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.poll import poll
from sane.testing.pytest_plugin import SHELLS, TmuxTestServer

from .conftest import run, sent_lines


def _looked(lines: list[str]) -> bool:
    return any("capture-pane" in line for line in lines)


def _shows(tmux: TmuxTestServer, pane: str, text: str) -> None:
    assert poll(lambda: text in tmux.run("capture-pane", "-p", "-t", pane), 5.0), text


@pytest.mark.parametrize("shell", ["dash", "mksh"])
def test_a_quiet_pane_is_not_looked_at_again_a_typed_key_is(
    sane_ctx: Context,
    tmux_server: TmuxTestServer,
    shell: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "echo one")["output"] == "one\n"
    lines = sent_lines(sane_ctx, pane, monkeypatch)
    assert run(sane_ctx, pane, "echo two")["output"] == "two\n"
    assert not _looked(lines), lines
    # A key typed and erased: the line is empty again, but the pane printed (the echo).
    tmux_server.run("send-keys", "-t", pane, "-l", "zq")
    _shows(tmux_server, pane, "zq")
    tmux_server.run("send-keys", "-t", pane, "BSpace", "BSpace")
    assert poll(lambda: "zq" not in tmux_server.run("capture-pane", "-p", "-t", pane), 5.0)
    lines.clear()
    assert run(sane_ctx, pane, "echo three")["output"] == "three\n"
    assert _looked(lines), lines
    victim = tmp_path / "DIR"
    victim.mkdir()
    tmux_server.run("send-keys", "-t", pane, "-l", f"rm -rf {victim} #")
    _shows(tmux_server, pane, "rm -rf")
    with pytest.raises(errors.PaneHasInput):
        run(sane_ctx, pane, "echo four")
    assert victim.is_dir()


def test_text_typed_while_the_pane_was_in_another_session_is_seen(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """The control client gets a pane's output only while the pane is in its session:
    a window moved away, typed into there and moved back printed nothing sane saw."""
    pane = tmux_server.new_pane("dash")
    assert run(sane_ctx, pane, "echo one")["output"] == "one\n"
    assert run(sane_ctx, pane, "echo two")["output"] == "two\n"  # now quiet
    window = tmux_server.run("display-message", "-p", "-t", pane, "#{window_id}").strip()
    tmux_server.run("new-session", "-d", "-s", "away", SHELLS["dash"])
    tmux_server.run("move-window", "-s", window, "-t", "away:")
    victim = tmp_path / "DIR"
    victim.mkdir()
    tmux_server.run("send-keys", "-t", pane, "-l", f"rm -rf {victim} #")
    _shows(tmux_server, pane, "rm -rf")
    tmux_server.run("move-window", "-s", window, "-t", "base:")
    with pytest.raises(errors.PaneHasInput):
        run(sane_ctx, pane, "echo three")
    assert victim.is_dir()
