"""sane's own descriptors as a budget sized to the parallelism (issue 17, sweep17 (c)).

`sane up` under a small open-files limit: the check per server read /proc/self/fd
and kept a fixed 32 free, so every server was refused below about 40 open files even
at `--max-parallel 1` (0 of 10 at 24 and at 40, sweep17b), while at higher limits
many threads passed it at once and then ran out. Now servers wait for their share
and connect; one that can never fit fails alone with ``resource_limit`` naming
``nofile``. The limit is real (`prlimit` on the sane process; the tmux server is
the test's own, unlimited), so are the sshd servers."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from sane.ops.context import Context
from sane.testing.fleet import register
from sane.testing.pytest_plugin import FleetFactory


def _up(env: dict[str, str], limit: int, parallel: int) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [
            *("prlimit", f"--nofile={limit}:{limit}", sys.executable, "-m", "sane.cli.main"),
            *("up", "--all", "--max-parallel", str(parallel)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize(("limit", "parallel"), [(24, 1), (40, 10)])
def test_servers_wait_for_descriptors_and_all_connect(
    cli_env: dict[str, str],
    sane_ctx: Context,
    make_fleet: FleetFactory,
    limit: int,
    parallel: int,
) -> None:
    """10 servers under a limit of 24 one at a time, and of 40 with 10 at once: all
    connect (before: all 10 refused, `resource_limit` "keeps ... 32 more free")."""
    servers = register(sane_ctx.home, make_fleet(10))
    code, doc = _up(cli_env, limit, parallel)
    failed = {r["server"]: r["error"] for r in doc["servers"] if not r["ok"]}
    assert (code, failed) == (0, {}), doc
    assert sorted(r["server"] for r in doc["servers"]) == sorted(s.name for s in servers)


def test_a_server_that_can_never_fit_fails_alone_naming_nofile(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any
) -> None:
    """A limit no server fits in: each fails alone, `resource_limit` naming nofile,
    its value and sane's own use; none waits for room that cannot come."""
    register(sane_ctx.home, ssh_fleet)
    code, doc = _up(cli_env, 16, 2)
    assert code == 5 and len(doc["servers"]) == 3, doc
    for result in doc["servers"]:
        error = result["error"]
        assert error["code"] == "resource_limit", result
        details = error["details"]
        assert (details["limit"], details["value"], details["process"]) == ("nofile", 16, "sane")
