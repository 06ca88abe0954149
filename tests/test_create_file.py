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
from sane.ops.runs import RunOptions, run_command, run_interrupt
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


def test_ten_megabytes(sane_ctx: Context, pane: str, workdir: Path) -> None:
    data = os.urandom(10_000_000)
    r = create_file(sane_ctx, str(workdir / "big"), data, pane=pane)
    assert hashlib.sha256((workdir / "big").read_bytes()).hexdigest() == r["sha256"]
    assert r["sha256"] == hashlib.sha256(data).hexdigest()


HOSTILE = [
    "with space.txt", "it's.txt", 'dq".txt', "$(touch CANARY).txt", "`touch CANARY`.txt",
    "-leading-dash", "ünïcödé ✓.txt", "semi;colon&amp|pipe>redir", "new\nline", "*glob?[x]",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_names_run_no_code(sane_ctx: Context, pane: str, workdir: Path,
                                        name: str) -> None:
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


def test_checksum_mismatch_leaves_the_target_untouched(sane_ctx: Context, pane: str,
                                                        workdir: Path) -> None:
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
    r = dict(run_command(sane_ctx, script, pane=pane,
                         options=RunOptions(timeout=0.5, quiet_period=None)))
    assert r["status"] == "running"
    assert [p.name for p in workdir.iterdir()] == [".sane-0123456789abcdef.tmp"]
    stopped = dict(run_interrupt(sane_ctx, str(r["run_id"])))
    assert stopped["status"] in ("interrupted", "completed")
    assert list(workdir.iterdir()) == []
    tty = run(sane_ctx, pane, "stty -a")["output"]
    assert " icanon" in tty and " echo" in tty  # the tty is restored
    assert run(sane_ctx, pane, "echo fine")["output"] == "fine\n"


def test_cli_from_stdin_and_errors(cli_env: dict[str, str], tmux_server: TmuxTestServer,
                                   workdir: Path) -> None:
    pane = tmux_server.new_pane("dash")
    target = workdir / "cli.txt"
    status, doc, _ = cli(["sane.cli.create_file", "--pane", pane, "--mode", "0640", str(target)],
                         cli_env, stdin="from stdin\n")
    assert status == 0 and target.read_text() == "from stdin\n" and doc["mode"] == "0640"
    validate("create-file", doc)
    status, doc, _ = cli(["sane.cli.create_file", "--pane", pane, "--no-overwrite",
                          "--content", "x", str(target)], cli_env)
    assert (status, doc["error"]["code"]) == (1, "file_exists")
    status, doc, _ = cli(["sane.cli.create_file", "--pane", pane, "--content", "x",
                          str(workdir / "no" / "dir" / "f")], cli_env)
    assert (status, doc["error"]["code"]) == (3, "parent_missing")
    status, doc, _ = cli(["sane.cli.create_file", "--pane", pane, "--mode", "9z", "--content",
                          "x", str(target)], cli_env)
    assert (status, doc["error"]["code"]) == (2, "invalid_argument")
