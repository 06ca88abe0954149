"""The README's main job and the runnable examples, run as a user would run them.

Each starts its own local fleet of real sshd servers (sane.demo.fleet), its own tmux
server and a temporary SANE_HOME, and exits non-zero when any of its checks fails.
Each runs with TMPDIR and TMUX_TMPDIR pointed at a private directory of the test's,
so "nothing is left behind" is checked on what this run made (no process and no file
of the test's own directory), whatever other users of the machine are running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sane import errors
from sane.demo import fleet as demo_fleet
from sane.schema import validate

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


@pytest.fixture
def demo_fleet_usable() -> None:
    try:
        demo_fleet.check_usable()
    except errors.SaneError as exc:
        pytest.skip(f"a demo fleet cannot run here: {exc.message}")


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A directory for TMPDIR and TMUX_TMPDIR; the test checks it is left empty.
    A short name: under a long TMPDIR, $SANE_HOME/run/cm is too long for ssh's
    control sockets and sane makes (and, with the demo's SANE_HOME gone, orphans) a
    mkdtemp directory in TMPDIR instead."""
    path = Path(tempfile.mkdtemp(prefix="sx-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line names ``text`` (this test's private dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(f"{entry.name}: {args}")
    return found


def run(argv: list[str], tmp: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SANE_HOME", "SANE_TMUX_SOCKET", "TMUX", "TMUX_PANE")
    }
    env.update(TMPDIR=str(tmp), TMUX_TMPDIR=str(tmp))
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd=ROOT
    )


def assert_left_nothing(tmp: Path) -> None:
    assert not processes_mentioning(str(tmp))
    left = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))
    # tmux makes its private tmux-<uid> directory and keeps it; anything in it is left
    assert left in ([], [f"tmux-{os.getuid()}"]), left


@pytest.mark.usefixtures("demo_fleet_usable")
@pytest.mark.parametrize(
    "script", ["tests/test-multi-server-deploy.sh", "examples/canary.sh", "examples/blue_green.sh"]
)
def test_bash_examples(script: str, private_tmp: Path) -> None:
    proc = run(["bash", script], private_tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all checks passed" in proc.stderr
    assert "FAIL" not in proc.stderr
    assert_left_nothing(private_tmp)


@pytest.mark.usefixtures("demo_fleet_usable")
def test_python_example(private_tmp: Path) -> None:
    proc = run([sys.executable, "examples/deploy_demo.py"], private_tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all checks passed" in proc.stderr
    assert_left_nothing(private_tmp)


def test_bash_example_says_why_it_stops(private_tmp: Path) -> None:
    """A step that fails prints what failed (not a silent exit 2): here the fleet
    cannot start because there is no sshd on PATH's OpenSSH (SSHD is absolute, so
    the fleet is given a directory it cannot create instead)."""
    blocker = private_tmp / "not-a-dir"
    blocker.write_text("")
    script = (
        f'source examples/_fleet.sh; work="{blocker}"; start_fleet 1; '
        'echo "should not get here" >&2'
    )
    proc = run(["bash", "-c", f"set -euo pipefail; {script}"], private_tmp)
    assert proc.returncode != 0
    assert "should not get here" not in proc.stderr
    assert "FAIL" in proc.stderr and "sane demo fleet start" in proc.stderr, proc.stderr


@pytest.mark.usefixtures("demo_fleet_usable")
def test_sane_demo_runs_the_story_and_leaves_nothing(private_tmp: Path) -> None:
    proc = run([sys.executable, "-m", "sane.cli.main", "demo"], private_tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    validate("demo", doc)
    assert doc["ok"] and doc["demo_ok"]
    assert [c["ok"] for c in doc["checks"]] == [True] * 10
    assert {s: d["version"] for s, d in doc["final_health"].items()} == {
        "server1": "2.0.0",
        "server2": "2.0.0",
        "server3": "2.0.0",
    }
    assert "server2] rolled_back after step:migrate failed" in proc.stderr
    assert_left_nothing(private_tmp)


@pytest.fixture(scope="module")
def normal_user() -> Iterator[str]:
    """A throw-away login with no sudo, for the demo's "no root needed" promise."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root to create a throw-away user")
    name = "sanedemo"
    created = subprocess.run(["id", name], capture_output=True, check=False).returncode != 0
    if created:
        proc = subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"useradd refused: {proc.stderr.strip()}")
    try:
        yield name
    finally:
        if created:
            subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)


def test_sane_demo_as_a_normal_user(normal_user: str, private_tmp: Path) -> None:
    """As a normal user, with /dev/pts mounted the standard way (gid=tty): this
    machine's own devpts lacks gid=5, so the test gives the demo a private, standard
    devpts instance in a mount namespace; everything else is the user's own."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no system python3 a normal user can run")
    site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"), None)
    if site is None:
        pytest.skip("no project venv")
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if version != str(tuple(sys.version_info[:2])):
        pytest.skip(f"system python {version} differs from the venv's")
    private_tmp.chmod(0o1777)  # the user's TMPDIR, as /tmp is
    env_args = [
        "env",
        "-i",
        f"HOME=/home/{normal_user}",
        "PATH=/usr/bin:/bin:/usr/sbin",
        "LANG=C.UTF-8",
        f"PYTHONPATH={ROOT}:{site}",
        f"TMPDIR={private_tmp}",
        f"TMUX_TMPDIR={private_tmp}",
        python,
        "-m",
        "sane.cli.main",
        "demo",
    ]
    script = (
        "mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts /dev/pts && "
        'mount --bind /dev/pts/ptmx /dev/ptmx && exec runuser -u "$0" -- "$@"'
    )
    proc = run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            normal_user,
            *env_args,
        ],
        private_tmp,
    )
    if "mount" in proc.stderr and proc.returncode != 0 and not proc.stdout:
        pytest.skip(f"cannot mount a devpts instance here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    doc = json.loads(proc.stdout)
    assert doc["demo_ok"] is True
    assert f"ssh {normal_user}@127.0.0.1" in proc.stderr  # really logged in as that user
    assert not processes_mentioning(str(private_tmp))
    uid = int(
        subprocess.run(["id", "-u", normal_user], capture_output=True, text=True, check=True).stdout
    )
    left = sorted(str(p.relative_to(private_tmp)) for p in private_tmp.rglob("*"))
    assert left in ([], [f"tmux-{uid}"]), left
