"""create_file against real tmux panes: the host's bytes and checksums are asserted."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.ops.create_file import _script, create_file
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_interrupt
from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli, run


@pytest.fixture
def workdir() -> Iterator[Path]:
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sane-cf-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_all_byte_values(sane_ctx: Context, pane: str, workdir: Path) -> None:
    data = bytes(range(256)) * 4
    r = create_file(sane_ctx, str(workdir / "bytes.bin"), data, pane=pane)
    assert (workdir / "bytes.bin").read_bytes() == data
    assert r["sha256"] == hashlib.sha256(data).hexdigest() and r["bytes"] == 1024
    assert (r["action"], r["mode"], r["path"]) == ("created", "0644", str(workdir / "bytes.bin"))


def test_empty_file(sane_ctx: Context, pane: str, workdir: Path) -> None:
    r = create_file(sane_ctx, str(workdir / "empty"), b"", pane=pane)
    assert (workdir / "empty").read_bytes() == b"" and r["bytes"] == 0


@pytest.mark.slow
def test_ten_megabytes(sane_ctx: Context, pane: str, workdir: Path) -> None:
    data = os.urandom(10_000_000)
    r = create_file(sane_ctx, str(workdir / "big"), data, pane=pane)
    assert hashlib.sha256((workdir / "big").read_bytes()).hexdigest() == r["sha256"]
    assert r["sha256"] == hashlib.sha256(data).hexdigest()


HOSTILE = [
    "with space.txt",
    "it's.txt",
    'dq".txt',
    "$(touch CANARY).txt",
    "`touch CANARY`.txt",
    "-leading-dash",
    "ünïcödé ✓.txt",
    "semi;colon&amp|pipe>redir",
    "new\nline",
    "*glob?[x]",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_names_run_no_code(
    sane_ctx: Context, pane: str, workdir: Path, name: str
) -> None:
    run(sane_ctx, pane, f"cd {workdir}")
    r = create_file(sane_ctx, name, name.encode(), pane=pane)
    assert (workdir / name).read_bytes() == name.encode()
    assert r["path"] == f"{workdir}/{name}"
    assert not (workdir / "CANARY").exists() and not Path("CANARY").exists()
    assert sorted(os.listdir(workdir)) == [name]  # no temp file left behind


def test_relative_path_uses_the_pane_cwd(sane_ctx: Context, pane: str, workdir: Path) -> None:
    (workdir / "sub").mkdir()
    run(sane_ctx, pane, f"cd {workdir}/sub")
    r = create_file(sane_ctx, "rel.txt", b"x", pane=pane)
    assert r["path"] == f"{workdir}/sub/rel.txt" and (workdir / "sub/rel.txt").read_bytes() == b"x"


def test_parent_missing_and_parents(sane_ctx: Context, pane: str, workdir: Path) -> None:
    target = workdir / "a" / "b" / "c.txt"
    with pytest.raises(errors.ParentMissing):
        create_file(sane_ctx, str(target), b"x", pane=pane)
    assert not (workdir / "a").exists()
    create_file(sane_ctx, str(target), b"x", pane=pane, parents=True)
    assert target.read_bytes() == b"x"


def test_no_overwrite_backup_and_mode(sane_ctx: Context, pane: str, workdir: Path) -> None:
    target = workdir / "conf"
    target.write_bytes(b"old")
    target.chmod(0o751)
    with pytest.raises(errors.FileExists):
        create_file(sane_ctx, str(target), b"new", pane=pane, no_overwrite=True)
    assert target.read_bytes() == b"old"
    r = create_file(sane_ctx, str(target), b"new", pane=pane, backup=True)
    assert (r["action"], r["mode"]) == ("replaced", "0751")  # the replaced file's mode kept
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o751
    assert r["backup_path"] is not None and Path(r["backup_path"]).read_bytes() == b"old"
    r = create_file(sane_ctx, str(target), b"newer", pane=pane, mode=0o600)
    assert r["mode"] == "0600" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_checksum_mismatch_leaves_the_target_untouched(
    sane_ctx: Context, pane: str, workdir: Path
) -> None:
    target = workdir / "keep"
    target.write_bytes(b"original")
    with pytest.raises(errors.ChecksumMismatch) as info:
        create_file(sane_ctx, str(target), b"other", pane=pane, expected_sha256="0" * 64)
    assert info.value.details["actual"] == hashlib.sha256(b"other").hexdigest()
    assert target.read_bytes() == b"original" and sorted(os.listdir(workdir)) == ["keep"]


def test_permission_denied(sane_ctx: Context, tmux_server: TmuxTestServer, workdir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to start a pane as another user")
    locked = workdir / "locked"
    locked.mkdir(mode=0o755)
    pane = tmux_server.new_pane("setpriv --reuid=65534 --regid=65534 --clear-groups dash")
    with pytest.raises(errors.PermissionDenied):
        create_file(sane_ctx, str(locked / "f"), b"x", pane=pane)
    assert os.listdir(locked) == []


def test_interrupted_transfer_leaves_nothing(sane_ctx: Context, pane: str, workdir: Path) -> None:
    # The host side waits for content that never comes; the run is interrupted.
    target = workdir / "never"
    script = _script(str(target), 1000, "0" * 64, "0123456789abcdef", None, False, False, False)
    r = dict(
        run_command(sane_ctx, script, pane=pane, options=RunOptions(timeout=0.5, quiet_period=None))
    )
    assert r["status"] == "running"
    assert [p.name for p in workdir.iterdir()] == [".sane-0123456789abcdef.tmp"]
    stopped = dict(run_interrupt(sane_ctx, str(r["run_id"])))
    assert stopped["status"] in ("interrupted", "completed")
    assert list(workdir.iterdir()) == []
    tty = run(sane_ctx, pane, "stty -a")["output"]
    assert " icanon" in tty and " echo" in tty  # the tty is restored
    assert run(sane_ctx, pane, "echo fine")["output"] == "fine\n"


def test_cli_from_stdin_and_errors(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, workdir: Path
) -> None:
    pane = tmux_server.new_pane("dash")
    target = workdir / "cli.txt"
    status, doc, _ = cli(
        ["sane.cli.create_file", "--pane", pane, "--mode", "0640", str(target)],
        cli_env,
        stdin="from stdin\n",
    )
    assert status == 0 and target.read_text() == "from stdin\n" and doc["mode"] == "0640"
    validate("create-file", doc)
    status, doc, _ = cli(
        ["sane.cli.create_file", "--pane", pane, "--no-overwrite", "--content", "x", str(target)],
        cli_env,
    )
    assert (status, doc["error"]["code"]) == (1, "file_exists")
    status, doc, _ = cli(
        [
            "sane.cli.create_file",
            "--pane",
            pane,
            "--content",
            "x",
            str(workdir / "no" / "dir" / "f"),
        ],
        cli_env,
    )
    assert (status, doc["error"]["code"]) == (3, "parent_missing")
    status, doc, _ = cli(
        ["sane.cli.create_file", "--pane", pane, "--mode", "9z", "--content", "x", str(target)],
        cli_env,
    )
    assert (status, doc["error"]["code"]) == (2, "invalid_argument")


def test_a_symlink_to_a_private_file_is_followed_keeping_its_mode(
    sane_ctx: Context, pane: str, workdir: Path
) -> None:
    target = workdir / "secret.conf"
    target.write_bytes(b"old\n")
    target.chmod(0o600)
    link = workdir / "link.conf"
    link.symlink_to(target)
    result = create_file(sane_ctx, str(link), b"new\n", pane=pane)
    assert link.is_symlink() and os.readlink(link) == str(target)  # the link stays
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # never a 0777 regular file
    assert result["path"] == str(target) and result["mode"] == "0600"
    assert result["action"] == "replaced"
    # A dangling link into a missing directory: a clear error, nothing created.
    (workdir / "dangling").symlink_to(workdir / "nowhere" / "x")
    with pytest.raises(errors.ParentMissing):
        create_file(sane_ctx, str(workdir / "dangling"), b"x", pane=pane)
    assert not (workdir / "nowhere").exists()


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_noclobber_in_the_panes_shell(
    sane_ctx: Context, tmux_server: TmuxTestServer, workdir: Path, shell: str
) -> None:
    pane = tmux_server.new_pane(shell)
    run(sane_ctx, pane, "set -o noclobber")
    target = workdir / "f"
    target.write_bytes(b"old")
    result = create_file(sane_ctx, str(target), b"new\x00bytes", pane=pane)
    assert target.read_bytes() == b"new\x00bytes" and result["action"] == "replaced"
    assert run(sane_ctx, pane, "set -o | grep noclobber")["output"].split()[-1] == "on"


def test_kill_9_of_create_file_at_random_points(
    sane_ctx: Context, tmux_server: TmuxTestServer, workdir: Path
) -> None:
    """A create-file process killed at any point leaves the target old or new, never
    half-written, and the pane usable: the host stops waiting for content after the
    idle timer, the next create-file works."""
    import random
    import subprocess
    import sys

    from sane.poll import poll

    pane = tmux_server.new_pane("bash")
    target = workdir / "data"
    old = b"old content\n"
    target.write_bytes(old)
    new = os.urandom(300_000)
    env = dict(os.environ, SANE_TMUX_SOCKET=tmux_server.socket_name, SANE_HOME=str(sane_ctx.home))
    child = (
        "import sys\nfrom pathlib import Path\nfrom sane.ops.context import Context\n"
        "from sane.ops.create_file import create_file\n"
        "data = Path(sys.argv[3]).read_bytes()\n"
        "with Context() as ctx:\n"
        "    create_file(ctx, sys.argv[1], data, pane=sys.argv[2], idle=1.0)\n"
    )
    content = workdir.parent / f"{workdir.name}.content"
    content.write_bytes(new)
    rng = random.Random(16)
    outcomes = {"old": 0, "new": 0}
    try:
        for _ in range(int(os.environ.get("SANE_KILL_ITERATIONS", "100"))):
            proc = subprocess.Popen(
                [sys.executable, "-c", child, str(target), pane, str(content)], env=env
            )
            try:
                code = proc.wait(timeout=rng.uniform(0.05, 2.5))
                assert code == 0
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            data = target.read_bytes()
            assert data in (old, new), f"half-written: {len(data)} bytes"
            outcomes["new" if data == new else "old"] += 1
            # The pane comes back to its shell by itself (idle timer), temp file gone.
            assert poll(lambda: not list(workdir.glob(".sane-*")), 30)
            target.write_bytes(old)
        # The pane is usable: the next create-file and run work.
        create_file(sane_ctx, str(target), b"after", pane=pane)
        assert target.read_bytes() == b"after"
        assert run(sane_ctx, pane, "echo fine")["output"] == "fine\n"
    finally:
        content.unlink()
    assert outcomes["old"] and outcomes["new"], outcomes
