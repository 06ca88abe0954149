"""A local co-tenant and the terminal sane is called from (docs/security.md).

A second local user plants symlinks, files and directories under every name sane
used to write in the shared temp directory, and where sane writes now; sane must
neither follow them nor stop working. ``fs.protected_symlinks`` is 0 on the test
machines (checked below): the kernel does not save sane from following a symlink.

And sane called from inside tmux must send every tmux command of the call to the
caller's server, and never type into the caller's own pane.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sane.poll import poll
from sane.testing.pytest_plugin import SHELLS, TmuxTestServer, run_process

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cotenant() -> Iterator[pwd.struct_passwd]:
    """A second local user (created for the module, removed afterwards)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("creating a second local user needs root and useradd")
    name = f"sanect{os.getpid() % 100000}"
    made = subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/bin/sh", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def as_user(user: pwd.struct_passwd, *argv: str) -> None:
    """Run ``argv`` as ``user`` (setpriv, or su as a fallback)."""
    if shutil.which("setpriv"):
        cmd = [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--",
            *argv,
        ]
    else:
        cmd = ["su", "-s", "/bin/sh", user.pw_name, "-c", " ".join(map(repr, argv))]
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A world-writable sticky directory like /tmp, used as this test's TMPDIR (so the
    plants never touch the machine's real /tmp, where other runs live)."""
    path = Path(tempfile.mkdtemp(prefix="sane-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def symlinks_followed() -> bool:
    try:
        return Path("/proc/sys/fs/protected_symlinks").read_text().strip() == "0"
    except OSError:
        return False


@pytest.mark.slow
def test_planted_names_in_the_shared_temp_dir_are_never_used(
    cotenant: pwd.struct_passwd,
    shared: Path,
    tmp_path: Path,
    tmux_server: TmuxTestServer,
    cli_env: dict[str, str],
) -> None:
    if not symlinks_followed():  # let the kernel follow them, as on main's test machine
        with contextlib.suppress(OSError):  # a read-only /proc/sys: the test still runs,
            Path("/proc/sys/fs/protected_symlinks").write_text("0")  # but proves less
    uid = os.getuid()
    label = tmux_server.socket_name
    victims = tmp_path / "victims"
    victims.mkdir(mode=0o700)
    # Every fixed name sane used in the temp dir, planted by the co-tenant.
    as_user(
        cotenant, "ln", "-s", str(victims / "creation"), str(shared / f"sane-{uid}-{label}.lock")
    )
    as_user(
        cotenant,
        "ln",
        "-s",
        str(victims / "clients"),
        str(shared / f"sane-{uid}-{label}.clients.lock"),
    )
    as_user(cotenant, "touch", str(shared / f"sane-{uid}-cm"))
    env = dict(cli_env, TMPDIR=str(shared))
    env.pop("XDG_RUNTIME_DIR", None)

    proc = run_process([str(BIN / "sane-run-command"), "echo co-$((6*7))"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["output"] == "co-42\n"
    # Nothing was created where the symlinks point, nothing new in the shared dir.
    assert list(victims.iterdir()) == []
    assert sorted(p.name for p in shared.iterdir()) == sorted(
        [f"sane-{uid}-{label}.lock", f"sane-{uid}-{label}.clients.lock", f"sane-{uid}-cm"]
    )
    # The ssh ControlMaster directory does not care about the plain file either.
    probe = subprocess.run(
        [sys.executable, "-c", "from sane.fleet.ssh import control_dir; print(control_dir())"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    control = Path(probe.stdout.strip())
    assert control != shared / f"sane-{uid}-cm"  # its own unguessable (mkdtemp) name
    assert not control.is_symlink()
    assert control.stat().st_uid == uid and control.stat().st_mode & 0o777 == 0o700


@pytest.mark.slow
def test_a_home_or_runtime_dir_of_another_user_is_refused_not_used(
    cotenant: pwd.struct_passwd, shared: Path, tmux_server: TmuxTestServer, cli_env: dict[str, str]
) -> None:
    # The co-tenant gets to a guessable $SANE_HOME first: sane refuses it, by name.
    as_user(cotenant, "mkdir", "-m", "0777", str(shared / "home"))
    as_user(cotenant, "mkdir", "-m", "0777", str(shared / "runtime"))
    env = dict(cli_env, SANE_HOME=str(shared / "home"), XDG_RUNTIME_DIR=str(shared / "runtime"))
    target = shared / "target"
    proc = run_process([str(BIN / "sane-create-file"), str(target), "--content", "x"], env)
    answer = json.loads(proc.stdout)
    assert proc.returncode != 0
    assert answer["error"]["code"] == "state_invalid", answer
    assert str(shared / "home") in answer["error"]["message"]
    assert os.listdir(shared / "home") == [] and os.listdir(shared / "runtime") == []
    assert not target.exists()


def test_runtime_dir_is_private_and_its_files_are_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sane import errors
    from sane.paths import open_private, runtime_dir

    home = tmp_path / "home"
    monkeypatch.setenv("SANE_HOME", str(home))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    run = Path(runtime_dir())
    assert run == home / "run"
    for path in (home, run):
        assert path.stat().st_mode & 0o777 == 0o700 and path.stat().st_uid == os.getuid()
    (run / "planted").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        open_private(str(run / "planted"), os.O_RDWR | os.O_CREAT)
    assert not (tmp_path / "target").exists()
    # Another process's runtime dir loosened to 0755 is tightened back.
    loose = tmp_path / "home2"
    loose.mkdir(mode=0o700)
    (loose / "run").mkdir(mode=0o755)
    monkeypatch.setenv("SANE_HOME", str(loose))
    assert Path(runtime_dir()).stat().st_mode & 0o777 == 0o700
    assert issubclass(errors.StateError, errors.SaneError)


# -- the terminal sane is called from ---------------------------------------------


@pytest.fixture
def insider(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A tmux server on a non-default socket, as a person's own tmux, with its default
    server (where the bug put sane's session) in the same private TMUX_TMPDIR."""
    tmpdir = Path(tempfile.mkdtemp(prefix="sane-tt-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TMUX", "TMUX_PANE", "SANE_TMUX_SOCKET", "SANE_SESSION")
    }
    env.update(
        TMUX_TMPDIR=str(tmpdir),
        SANE_HOME=str(tmp_path / "home"),
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    subprocess.run(
        [
            "tmux",
            "-f",
            "/dev/null",
            "-L",
            "insider",
            "new-session",
            "-d",
            "-s",
            "mine",
            "-x",
            "200",
            "-y",
            "50",
            SHELLS["bash"],
        ],
        env=env,
        check=True,
    )
    subprocess.run(
        ["tmux", "-L", "insider", "set-option", "-g", "default-command", SHELLS["bash"]],
        env=env,
        check=True,
    )
    try:
        yield env, tmpdir
    finally:
        for socket in ("insider", "default"):
            subprocess.run(
                ["tmux", "-L", socket, "kill-server"], env=env, capture_output=True, check=False
            )
        shutil.rmtree(tmpdir, ignore_errors=True)


def type_in_own_pane(env: dict[str, str], pane: str, line: str) -> None:
    """Type ``line`` into the person's pane (a fresh bash at its prompt, established by
    the fixture) and wait for its ``done`` file."""
    subprocess.run(
        ["tmux", "-L", "insider", "send-keys", "-t", pane, "-l", line], env=env, check=True
    )
    subprocess.run(["tmux", "-L", "insider", "send-keys", "-t", pane, "Enter"], env=env, check=True)


@pytest.mark.tmux
def test_a_call_from_inside_tmux_stays_on_the_callers_server(
    insider: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, tmpdir = insider
    own = subprocess.run(
        ["tmux", "-L", "insider", "display-message", "-p", "-t", "mine", "#{pane_id}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out, done = tmp_path / "out.json", tmp_path / "done"
    type_in_own_pane(env, own, f"sane-run-command 'echo typed-here' > {out}; touch {done}")
    assert poll(done.exists, 120), "sane-run-command did not return in the person's pane"
    answer = json.loads(out.read_text())
    assert answer["ok"] and answer["output"] == "typed-here\n", answer
    assert answer["pane"] != own  # not typed into the caller's own pane
    sessions = subprocess.run(
        ["tmux", "-L", "insider", "list-sessions", "-F", "#{session_name}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "sane" in sessions  # sane's session is on the caller's server...
    assert not (tmpdir / f"tmux-{os.getuid()}" / "default").exists()  # ...not the default one


@pytest.mark.tmux
def test_sane_never_types_into_the_pane_it_is_called_from(
    insider: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, _ = insider
    out, done = tmp_path / "out.json", tmp_path / "done"
    # A first call makes sane's session and local pane; the person then calls sane from
    # that very pane (they attached to it), without naming a pane.
    first = tmp_path / "first"
    own = subprocess.run(
        ["tmux", "-L", "insider", "display-message", "-p", "-t", "mine", "#{pane_id}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    type_in_own_pane(env, own, f"sane-run-command true > {out}; touch {first}")
    assert poll(first.exists, 120)
    local = json.loads(out.read_text())["pane"]
    type_in_own_pane(env, local, f"sane-run-command 'echo never' > {out}; touch {done}")
    assert poll(done.exists, 120), "sane-run-command hung in its own pane"
    answer = json.loads(out.read_text())
    assert not answer["ok"] and answer["error"]["code"] == "pane_busy", answer
    assert answer["error"]["details"]["pane"] == local


def test_the_spill_of_a_killed_transfer_is_removed_by_the_next_one(
    tmux_server: TmuxTestServer, cli_env: dict[str, str], sane_home: Path, tmp_path: Path
) -> None:
    env = dict(cli_env)
    env.pop("XDG_RUNTIME_DIR", None)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from sane.ops.create_file import spill_file\n"
            "with spill_file(b'secret' * 1000) as path:\n"
            "    print(path, flush=True); time.sleep(600)\n",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    spill = Path(holder.stdout.readline().strip())
    assert spill.parent == sane_home / "run" and spill.stat().st_mode & 0o777 == 0o600
    old = spill.stat().st_mtime - 3600
    os.utime(spill, (old, old))
    # Held by a live transfer: kept, even when old.
    first = run_process([str(BIN / "sane-create-file"), str(tmp_path / "a"), "--content", "a"], env)
    assert first.returncode == 0, first.stdout
    assert spill.exists()
    holder.kill()  # kill -9 in the middle of the transfer
    holder.wait()
    second = run_process(
        [str(BIN / "sane-create-file"), str(tmp_path / "b"), "--content", "b"], env
    )
    assert second.returncode == 0, second.stdout
    assert not spill.exists()
    assert [p.name for p in (sane_home / "run").iterdir() if p.name.startswith("cf-")] == []
