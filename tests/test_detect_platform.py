"""detect_platform: the live probe against this machine, the parser on recorded probes."""

from __future__ import annotations

import os
import platform
import pwd
import shlex
import socket
from pathlib import Path

import pytest

from sane import errors
from sane.ops.context import Context
from sane.ops.detect_platform import parse_probe
from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli

PROBES = Path(__file__).parent / "probes"


def _os_release() -> dict[str, str]:
    values: dict[str, str] = {}
    with open("/etc/os-release") as fh:
        for line in fh:
            key, sep, value = line.strip().partition("=")
            if sep:
                values[key] = shlex.split(value)[0] if value else ""
    return values


def test_live_probe_matches_this_machine(sane_ctx: Context, pane: str, shell: str) -> None:
    from sane.ops.detect_platform import detect_platform

    info = detect_platform(sane_ctx, pane=pane)
    validate("detect-platform", {"ok": True, "schema_version": 1, **info})
    uname = platform.uname()
    assert (info["os"], info["kernel_release"], info["arch"]) == (
        uname.system,
        uname.release,
        uname.machine,
    )
    osr = _os_release()
    assert info["distro"] == {
        "id": osr.get("ID"),
        "version_id": osr.get("VERSION_ID"),
        "name": osr.get("PRETTY_NAME") or osr.get("NAME"),
    }
    me = pwd.getpwuid(os.getuid())
    assert (info["user"], info["uid"]) == (me.pw_name, os.getuid())
    assert info["login_shell"]["path"] == me.pw_shell
    # The shell the pane runs (bash or dash), whatever the login shell is.
    assert info["shell"]["name"] == shell
    assert info["hostname"] == socket.gethostname()
    assert info["tools"]["base64"] is True and "apt-get" in info["package_managers"]
    assert info["coreutils"] == "gnu"  # Debian's ls
    assert info["pane"] == pane and info["duration_ms"] is not None


def test_macos() -> None:
    info = parse_probe((PROBES / "macos.txt").read_text())
    assert info["distro"] == {"id": "macos", "version_id": "14.4.1", "name": "macOS"}
    assert (info["init_system"], info["container"], info["virtualization"]) == (
        "launchd",
        None,
        None,
    )
    assert info["login_shell"] == {
        "path": "/bin/zsh",
        "name": "zsh",
        "version": "zsh 5.9 (x86_64-apple-darwin23.0)",
    }
    # Recorded before the probe looked at the running shell: unknown, not a guess.
    assert info["shell"] == {"path": None, "name": None, "version": None}
    assert info["tools"]["sha256sum"] is False and info["tools"]["shasum"] is True
    assert info["sudo_without_password"] is False and info["locale"]["lc_all"] is None


def test_alpine_container() -> None:
    info = parse_probe((PROBES / "alpine-container.txt").read_text())
    assert info["distro"] == {"id": "alpine", "version_id": "3.19.1", "name": "Alpine Linux v3.19"}
    assert info["container"] == "docker" and info["init_system"] is None
    assert info["init_process"] == "sleep" and info["package_managers"] == ["apk"]
    assert info["sudo_without_password"] is None  # no sudo: unknown, not false
    assert info["login_shell"]["version"] is None and info["locale"]["charmap"] is None


def test_freebsd() -> None:
    info = parse_probe((PROBES / "freebsd.txt").read_text())
    assert info["distro"] == {"id": "freebsd", "version_id": "14.0-RELEASE", "name": "FreeBSD"}
    assert (info["arch"], info["package_managers"], info["init_system"]) == ("amd64", ["pkg"], None)


def test_kubernetes_on_a_vm() -> None:
    info = parse_probe((PROBES / "ubuntu-k8s.txt").read_text())
    assert info["distro"] == {"id": "ubuntu", "version_id": "22.04", "name": "Ubuntu 22.04.4 LTS"}
    assert (info["container"], info["virtualization"], info["init_system"]) == (
        "kubernetes",
        "amazon",
        "tini",
    )
    assert info["sudo_without_password"] is True and info["uid"] == 10001


def test_truncated_probe_is_an_error_not_a_guess() -> None:
    text = (PROBES / "freebsd.txt").read_text().replace("end=1\n", "")
    with pytest.raises(errors.TransferFailed):
        parse_probe(text)


def test_cli(cli_env: dict[str, str], tmux_server: TmuxTestServer) -> None:
    pane = tmux_server.new_pane("dash")
    status, doc, _ = cli(["sane.cli.detect_platform", "--pane", pane], cli_env)
    assert status == 0
    validate("detect-platform", doc)
    assert doc["os"] == platform.system()


def test_restricted_shell_is_a_clear_error(sane_ctx: Context, tmux_server: TmuxTestServer) -> None:
    """rbash refuses the probe's redirections: an error naming it, not ok with nulls."""
    from sane.ops.detect_platform import detect_platform

    pane = tmux_server.new_pane(
        "env -u PROMPT_COMMAND HISTFILE=/dev/null PS1='$ ' rbash --norc --noprofile"
    )
    with pytest.raises(errors.ShellRestricted) as caught:
        detect_platform(sane_ctx, pane=pane)
    assert caught.value.details["shell"] == "rbash"


def test_running_shell_from_a_busybox_login() -> None:
    """busybox is every applet: the running shell's name comes from its argv."""
    info = parse_probe("run_shell_exe=/bin/busybox\nrun_shell_argv=-ash \nend=1\n")
    assert info["shell"] == {"path": "/bin/busybox", "name": "ash", "version": None}
    info = parse_probe("run_shell_argv=-zsh\nrun_shell_version=5.9\nend=1\n")  # no /proc
    assert info["shell"] == {"path": None, "name": "zsh", "version": "5.9"}


@pytest.mark.parametrize(
    ("printed", "coreutils"),
    [
        ("ls (GNU coreutils) 9.1 Copyright (C) 2022 Free Software Foundation, Inc. ", "gnu"),
        (
            "ls: unrecognized option '--version' BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) "
            "multi-call binary. ",
            "busybox",
        ),
        ("toybox 0.8.9 ", "toybox"),
        ("ls (uutils coreutils) 0.0.28 ", "uutils"),
        # the BSDs and macOS: a usage that names no implementation; unknown, not a guess
        (
            "ls: unrecognized option `--version' usage: ls [-@ABCFGHILOPRSTUWXabcdefghiklmnopqrs] ",
            None,
        ),
        ("", None),
    ],
)
def test_coreutils_from_ls_version(printed: str, coreutils: str | None) -> None:
    info = parse_probe(f"coreutils={printed}\nend=1\n")
    assert info["coreutils"] == coreutils
