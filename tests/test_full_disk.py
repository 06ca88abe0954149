"""A full ``$SANE_HOME``: a 1 MB tmpfs filled in the middle of a deploy, then freed.

The deploy must stop with ``state_invalid`` naming the deploy, leave no torn line in
its journal and no pane marked busy, and once space is back ``status`` and
``rollback`` must work and undo every step that ran. The same for servers.json.
(Needs root to mount a tmpfs; skipped where mounting is not allowed.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sane.testing.fleet import register


@pytest.fixture
def small_home(sane_home: Path) -> Iterator[Path]:
    sane_home.mkdir(mode=0o700, parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(sane_home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield sane_home
    finally:
        subprocess.run(["umount", "-l", str(sane_home)], capture_output=True, check=False)


def sane(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_a_deploy_that_fills_sane_home_stops_cleanly_and_rolls_back_once_freed(
    small_home: Path, cli_env: dict[str, str], make_fleet: Callable[..., Any], tmp_path: Path
) -> None:
    fleet = make_fleet(2)
    register(small_home, fleet)
    filler = small_home / "filler"
    # The servers are local: step two fills the orchestrator's $SANE_HOME, then prints
    # 9,000 bytes, which the journal keeps (its last 8 KiB): that line cannot be written.
    fill = f"head -c 2000000 /dev/zero >> {filler} 2>/dev/null"
    steps = [
        {"name": "one", "run": "echo one >> log", "undo": "echo undo-one >> log"},
        {
            "name": "two",
            "run": f"echo two >> log; {fill}; head -c 9000 /dev/zero | tr '\\0' x",
            "undo": "echo undo-two >> log",
        },
        {"name": "three", "run": "echo three >> log", "undo": "echo undo-three >> log"},
    ]
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"name": "fill", "steps": steps}))
    code, answer = sane(cli_env, "deploy", str(plan), "--all")
    assert code == 7 and answer["error"]["code"] == "state_invalid", answer
    deploy_id = answer["error"]["details"]["deploy_id"]
    assert answer["error"]["details"].get("errno") == "ENOSPC", answer
    journal = small_home / "deploys" / deploy_id / "journal.jsonl"
    assert journal.read_bytes().endswith(b"\n")  # written whole or not at all
    for line in journal.read_bytes().splitlines():
        json.loads(line)

    filler.unlink()  # space is back
    every_log: list[list[str]] = []
    code, status = sane(cli_env, "deploy", "status", deploy_id)
    assert code == 0 and status["status"] == "interrupted", status
    code, rolled = sane(cli_env, "deploy", "rollback", deploy_id)
    assert code == 0 and rolled["status"] == "rolled_back", json.dumps(rolled, indent=1)
    for name in fleet.names:
        path = fleet[name].home / "log"
        log = path.read_text().split() if path.exists() else []
        ran = [entry for entry in log if not entry.startswith("undo-")]
        assert log == ran + [f"undo-{step}" for step in reversed(ran)], log
        every_log.append(log)
    # Step two ran and filled the disk: the deploy stopped in it, and it is undone too.
    assert any(log[:2] == ["one", "two"] for log in every_log), every_log
    # No pane is left marked busy: a run on every server works at once.
    code, again = sane(cli_env, "fleet", "run", "--all", "echo free")
    assert code == 0, again


def test_servers_json_on_a_full_home_is_kept_whole(
    small_home: Path, cli_env: dict[str, str]
) -> None:
    code, _ = sane(cli_env, "server", "add", "a1", "--host", "127.0.0.1")
    assert code == 0
    before = (small_home / "servers.json").read_bytes()
    filler = small_home / "filler"
    subprocess.run(["sh", "-c", f"head -c 2000000 /dev/zero > {filler}"], check=False)
    code, answer = sane(cli_env, "server", "add", "a2", "--host", "127.0.0.2")
    assert code == 7 and answer["error"]["code"] == "state_invalid", answer
    assert answer["error"]["details"]["errno"] == "ENOSPC"
    assert (small_home / "servers.json").read_bytes() == before
    assert [p.name for p in small_home.iterdir() if p.name.endswith(".tmp")] == []
    filler.unlink()
    code, _ = sane(cli_env, "server", "add", "a2", "--host", "127.0.0.2")
    assert code == 0
    code, listed = sane(cli_env, "server", "list")
    assert [s["name"] for s in listed["servers"]] == ["a1", "a2"]
