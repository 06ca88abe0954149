"""zsh reached the ways issue #14 measured (item 1), not only as a pane started as zsh.

On the old code every run in zsh came back exit 127 `command not found: eval` and the
command never ran (`command eval` looks for an external eval in zsh), and `sane connect`
said ok all the same. The issue names three ways a user's pane is zsh without asking
for it: `zsh -f` started by hand, a remote login whose `.bashrc` says `exec zsh`, and
tmux's `default-command "exec zsh"` for the panes sane makes. Real tmux, real zsh,
real sshd.
"""

from __future__ import annotations

from pathlib import Path

from sane.fleet.panes import connect_many
from sane.fleet.registry import Registry
from sane.ops.context import Context
from sane.ops.detect_platform import detect_platform
from sane.ops.run.command import run_command
from sane.testing.fleet import register
from sane.testing.pytest_plugin import FleetFactory, TmuxTestServer

from .conftest import run


def _exact_in(ctx: Context, pane: str, tmp_path: Path) -> None:
    """The command runs (a file it makes exists), with its own exit code and output."""
    made = tmp_path / "ran"
    r = run(ctx, pane, f"touch {made}; echo out; (exit 7)")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 7, "out\n")
    assert made.exists()
    assert detect_platform(ctx, pane=pane)["shell"]["name"] == "zsh"


def test_zsh_started_by_hand(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane("zsh -f")
    _exact_in(sane_ctx, pane, tmp_path)


def test_zsh_as_tmuxs_default_command(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """sane's own local pane, made by tmux from `default-command "exec zsh -f"`."""
    tmux_server.run("set-option", "-g", "default-command", "exec zsh -f")
    r = dict(run_command(sane_ctx, "echo $ZSH_NAME; (exit 7)"))
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 7, "zsh\n")
    _exact_in(sane_ctx, str(r["pane"]), tmp_path)


def test_zsh_execd_by_the_login_bashrc(
    sane_ctx: Context, make_fleet: FleetFactory, tmp_path: Path
) -> None:
    """A server whose login bash runs `exec zsh` from its rc file: runs are exact there
    and `sane connect` reports the shell sane found, not a blind ok."""
    fleet = make_fleet(1)
    srv = fleet.servers[0]
    (srv.home / ".zshrc").write_text("")  # a user of zsh has one (no new-user menu)
    (srv.home / ".bash_profile").write_text("exec zsh\n")
    register(sane_ctx.home, fleet)
    (report,) = connect_many(sane_ctx, [Registry(sane_ctx.home).get(srv.name)])
    assert (report["ok"], report["shell"], report["shell_note"]) == (True, "posix", None), report
    _exact_in(sane_ctx, report["pane"], tmp_path)
