"""Terminal queries printed by a login shell's own files (issue #14): tmux answers
them into the server's pane and ssh carries the answers to the remote shell as typed
keys before sane has typed anything there. In every shell of the matrix as the login
shell of a loopback sshd user, the pane's first run and the next are exact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sane.ops.context import Context
from sane.testing.fleet import Fleet
from sane.testing.fleet import Server as FleetServer

from .conftest import run
from .test_shells import login_pane, one_server_per_shell
from .test_terminal_queries import QUERIES

# Each shell's files read by an interactive login shell (yash's and fish's only ones).
LOGIN_FILES = {
    "bash": [".bash_profile", ".bashrc"],
    "dash": [".profile"],
    "zsh": [".zprofile", ".zshrc"],
    "ksh93": [".profile", ".kshrc"],
    "mksh": [".profile", ".mkshrc"],
    "ash": [".profile"],
    "yash": [".yash_profile", ".yashrc"],
    "posh": [".profile"],
    "fish": [".config/fish/config.fish"],
}
SHELLS = list(LOGIN_FILES)


def _printing_queries(fleet: Fleet, srv: FleetServer, shell: str) -> None:
    """Every login file of ``shell`` prints the queries."""
    (srv.home / ".local/share/fish/generated_completions").mkdir(parents=True)
    for name in LOGIN_FILES[shell]:
        rc = srv.home / name
        rc.parent.mkdir(parents=True, exist_ok=True)
        rc.write_text(f"printf '{QUERIES['all']}'\n")
    if shell == "ksh93":  # ksh93 reads $ENV (from .profile) when interactive
        with (srv.home / ".profile").open("a") as fh:
            fh.write("ENV=$HOME/.kshrc; export ENV\n")
    if shell == "mksh":
        with (srv.home / ".profile").open("a") as fh:
            fh.write("ENV=$HOME/.mkshrc; export ENV\n")


@pytest.fixture(scope="module")
def chatty_logins() -> Iterator[dict[str, tuple[Fleet, str]]]:
    """One sshd per shell, root's login shell there, each login file printing queries."""
    yield from one_server_per_shell(SHELLS, _printing_queries)


@pytest.mark.parametrize("shell", SHELLS)
def test_queries_in_login_files_neither_wedge_nor_lie(
    sane_ctx: Context, chatty_logins: dict[str, tuple[Fleet, str]], shell: str
) -> None:
    fleet, name = chatty_logins[shell]
    home = fleet[name].home
    before = {p.name for p in home.iterdir()}
    pane = login_pane(sane_ctx, fleet, name)
    first = run(sane_ctx, pane, "echo first; false", timeout=30)  # fish alike
    assert (first["status"], first["exit_code"], first["output"]) == ("completed", 1, "first\n")
    assert run(sane_ctx, pane, "echo next", timeout=30)["output"] == "next\n"
    # Nothing but sane's lines ran in the login directory: busybox ash ran the tail
    # of XTVERSION's answer joined to the takeover's first line (`cP>|tmux 3.3a...`,
    # creating a file `tmux`); a shell's history file is fine.
    made = {p.name for p in home.iterdir()} - before
    assert made <= {".ash_history", ".bash_history", ".mksh_history", ".sh_history"}, made
