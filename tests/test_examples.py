"""The README's main job and the runnable examples, run as a user would run them.

Each starts its own local fleet of real sshd servers (sane.demo.fleet), its own tmux
server and a temporary SANE_HOME, and exits non-zero when any of its checks fails;
these tests also check that nothing is left running afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def demo_sshds() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines()
            if "sshd" in line and ("sane-demo-" in line or "sane-example-" in line)]


def run(argv: list[str], env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False, cwd=ROOT)


@pytest.mark.parametrize("script", ["tests/test-multi-server-deploy.sh", "examples/canary.sh",
                                    "examples/blue_green.sh"])
def test_bash_examples(script: str) -> None:
    proc = run(["bash", script])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all checks passed" in proc.stderr
    assert "FAIL" not in proc.stderr
    assert not demo_sshds()


def test_python_example() -> None:
    proc = run([sys.executable, "examples/deploy_demo.py"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all checks passed" in proc.stderr


def test_sane_demo_runs_the_story_and_leaves_nothing() -> None:
    before = set(os.listdir("/tmp"))
    proc = run([sys.executable, "-m", "sane.cli.main", "demo"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["demo_ok"]
    assert [c["ok"] for c in doc["checks"]] == [True] * 10
    assert {s: d["version"] for s, d in doc["final_health"].items()} == {
        "server1": "2.0.0", "server2": "2.0.0", "server3": "2.0.0"}
    assert "server2] rolled_back after step:migrate failed" in proc.stderr
    assert not [d for d in set(os.listdir("/tmp")) - before if d.startswith("sane-demo-")]
    assert not demo_sshds()


@pytest.fixture(scope="module")
def normal_user() -> Iterator[str]:
    """A throw-away login with no sudo, for the demo's "no root needed" promise."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root to create a throw-away user")
    name = "sanedemo"
    created = run(["id", name]).returncode != 0
    if created:
        proc = run(["useradd", "--create-home", "--shell", "/bin/bash", name])
        if proc.returncode != 0:
            pytest.skip(f"useradd refused: {proc.stderr.strip()}")
    try:
        yield name
    finally:
        if created:
            run(["userdel", "--remove", name])


def test_sane_demo_as_a_normal_user(normal_user: str) -> None:
    """As a normal user, with /dev/pts mounted the standard way (gid=tty): this
    machine's own devpts lacks gid=5, so the test gives the demo a private, standard
    devpts instance in a mount namespace; everything else is the user's own."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no system python3 a normal user can run")
    site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"), None)
    if site is None:
        pytest.skip("no project venv")
    version = run([python, "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip()
    if version != str(tuple(sys.version_info[:2])):
        pytest.skip(f"system python {version} differs from the venv's")
    env_args = ["env", "-i", f"HOME=/home/{normal_user}", "PATH=/usr/bin:/bin:/usr/sbin",
                "LANG=C.UTF-8", f"PYTHONPATH={ROOT}:{site}", python, "-m", "sane.cli.main",
                "demo"]
    script = ("mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts /dev/pts && "
              "mount --bind /dev/pts/ptmx /dev/ptmx && exec runuser -u \"$0\" -- \"$@\"")
    proc = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                normal_user, *env_args])
    if "mount" in proc.stderr and proc.returncode != 0 and not proc.stdout:
        pytest.skip(f"cannot mount a devpts instance here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    doc = json.loads(proc.stdout)
    assert doc["demo_ok"] is True
    assert f"ssh {normal_user}@127.0.0.1" in proc.stderr  # really logged in as that user
