"""Installed as a user installs it: the wheel, into a clean venv, far from the checkout.

Builds the wheel from this checkout, installs it with pip into a new virtual
environment (its dependencies come from the package index, as for any user), and
runs the console scripts from a directory that is not the checkout, with no
PYTHONPATH: `sane demo` must find its plan inside the package, `sane --version` must
say the one version, the type information must be there, and `sane mcp` without the
`mcp` extra must say which extra to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import sane

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.ssh]  # builds a wheel; its sane demo starts sshd


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SANE_HOME", "SANE_TMUX_SOCKET")
    }
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Path]]:
    """(the wheel, the venv's bin directory), both in a private temp dir."""
    base = Path(tempfile.mkdtemp(prefix="sane-wheel-test-"))
    try:
        built = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-q",
                "-w",
                str(base / "dist"),
                str(ROOT),
            ],
            cwd=base,
        )
        assert built.returncode == 0, built.stderr[-3000:]
        wheel = next((base / "dist").glob("tmux_sane-*.whl"))
        made = _run([sys.executable, "-m", "venv", str(base / "venv")], cwd=base)
        assert made.returncode == 0, made.stderr
        bindir = base / "venv" / "bin"
        pip = _run([str(bindir / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=base)
        assert pip.returncode == 0, pip.stderr[-3000:]
        yield wheel, bindir
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_wheel_ships_types_license_and_the_demo_app(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "sane/py.typed" in names
    assert {"sane/demo/app/plan.yaml", "sane/demo/app/app.sh"} <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    assert "License-Expression: MIT" in metadata
    assert f"Version: {sane.__version__}\n" in metadata
    assert 'Requires-Dist: mcp<3,>=2.3; extra == "mcp"' in metadata


def test_installed_commands_answer(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bindir = installed
    version = _run([str(bindir / "sane"), "--version"], cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"sane {sane.__version__}\n")
    for script in (
        "sane-run-command",
        "sane-list-panes",
        "sane-create-file",
        "sane-detect-platform",
    ):
        proc = _run([str(bindir / script), "--help"], cwd=tmp_path)
        assert proc.returncode == 0 and "Usage:" in proc.stdout, (script, proc.stderr)
    schema = _run([str(bindir / "sane"), "schema", "run_command"], cwd=tmp_path)
    assert json.loads(schema.stdout)["command"] == "run_command"
    # Over stdio, stdout is the MCP channel: the error is a line on stderr (and the
    # refusal of a client's first request; stdin here is empty), never a document.
    mcp = _run([str(bindir / "sane"), "mcp"], cwd=tmp_path)
    assert (mcp.returncode, mcp.stdout) == (2, ""), mcp
    assert mcp.stderr.startswith("sane mcp: usage_error: ") and "tmux-sane[mcp]" in mcp.stderr
    http = _run([str(bindir / "sane"), "mcp", "--http", "0"], cwd=tmp_path)
    doc = json.loads(http.stdout)
    assert (http.returncode, doc["error"]["code"]) == (2, "usage_error")
    assert "tmux-sane[mcp]" in doc["error"]["message"]


def test_installed_sane_demo_runs_without_a_checkout(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("sane demo needs OpenSSH's sshd (/usr/sbin/sshd)")
    if os.geteuid() != 0:
        pytest.skip(
            "sane demo's sshd needs /dev/pts with gid=5 for a normal user, which "
            "this container lacks (test_examples runs it as a user in a namespace)"
        )
    _, bindir = installed
    proc = _run([str(bindir / "sane"), "demo"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["demo_ok"] is True
    assert all(check["ok"] for check in doc["checks"])
    assert str(bindir.parent) in proc.stderr  # the plan came from the installed package
