"""Options a user sets in the pane's shell neither break sane's work nor are changed by
it, in every POSIX shell of the matrix (issue #14, Measured 10: in yash noclobber
leaked into create-file). Real tmux, real shells."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.ops.detect_platform import detect_platform
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import run

POSIX_SHELLS = ["bash", "dash", "zsh", "ksh93", "mksh", "ash", "yash", "posh"]


@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_noclobber_set_by_the_user(
    sane_ctx: Context, tmux_server: TmuxTestServer, tmp_path: Path, shell: str
) -> None:
    pane = tmux_server.new_pane(shell)
    assert run(sane_ctx, pane, "set -C")["exit_code"] == 0
    target = tmp_path / "f"
    target.write_bytes(b"old")
    data = b"new\x00bytes\n"
    result = create_file(sane_ctx, str(target), data, pane=pane)
    assert (result["action"], result["sha256"]) == ("replaced", hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data
    assert detect_platform(sane_ctx, pane=pane)["shell"]["name"] == shell
    # Still the user's option: `>` onto an existing file is refused in their shell.
    r = run(sane_ctx, pane, f"echo x > {target} 2>/dev/null; echo $?")
    assert r["output"] != "0\n" and target.read_bytes() == data
