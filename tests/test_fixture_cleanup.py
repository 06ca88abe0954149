"""The test fixtures leave nothing behind: a killed test server takes its socket (which
tmux 3.3a leaves) and sane's lock files for it along (once ~250 files a suite run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux.control import clients_lock_path
from sane.tmux.structure import creation_lock_path


@pytest.mark.tmux
def test_killed_test_server_leaves_no_socket_or_lock_files(tmp_path: Path) -> None:
    srv = TmuxTestServer(f"sane-cleanup-{os.getpid()}")
    srv.start()
    try:
        with Context(srv.server, home=tmp_path / "home") as ctx:
            assert run_command(ctx, "true")["exit_code"] == 0  # takes both locks
        files = [
            srv.server.socket_file(),
            str(creation_lock_path(srv.server)),
            clients_lock_path(srv.server),
        ]
        assert all(os.path.exists(f) for f in files), files
    finally:
        srv.kill()
    assert [f for f in files if os.path.exists(f)] == []
