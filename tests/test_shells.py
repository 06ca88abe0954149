"""The shell matrix: one exactness suite run in every shell sane supports.

Each test runs in a local pane of each shell in ``SHELLS`` (clean rc files), against
real tmux; expected outputs come from the same shell running the same command with
``-c`` where the shell itself decides the bytes.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.ops.runs import run_input, run_interrupt, run_wait
from sane.testing.pytest_plugin import SHELL_COMMANDS, TmuxTestServer

from .conftest import output_bytes, run
from .test_run_command import HAZARDS

POSIX_SHELLS = ["bash", "dash", "zsh", "ksh93", "mksh", "ash", "yash", "posh"]


@pytest.fixture(params=POSIX_SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pane(tmux_server: TmuxTestServer, shell: str) -> str:
    return tmux_server.new_pane(shell)


def reference(shell: str, command: str) -> subprocess.CompletedProcess[bytes]:
    """What ``shell`` prints for ``command`` outside tmux (the expected value)."""
    return subprocess.run([*SHELL_COMMANDS[shell], "-c", command], capture_output=True,
                          check=False, timeout=30)


def test_no_trailing_newline(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf abc")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "abc")


@pytest.mark.parametrize(
    "command,code",
    [
        ("(exit 7)", 7),
        ("(exit 255)", 255),
        ("false", 1),
        ("false | true", 0),
        ("true | (exit 3)", 3),
        ("sh -c 'exit 42'", 42),
        ("f() { return 12; }; f", 12),
        ("sh -c 'kill -TERM $$'", 143),
        ("sh -c 'kill -KILL $$'", 137),
        ("sh -c 'kill -SEGV $$'", 139),
    ],
)
def test_exit_codes(sane_ctx: Context, pane: str, command: str, code: int) -> None:
    r = run(sane_ctx, pane, command)
    assert (r["status"], r["exit_code"]) == ("completed", code)
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_child_killed_by_sigint(sane_ctx: Context, pane: str, shell: str) -> None:
    # Most interactive shells abandon the whole command line when its foreground
    # child dies of SIGINT, as if C-c had been typed: sane then says `interrupted`.
    r = run(sane_ctx, pane, "sh -c 'kill -INT $$'")
    assert r["exit_code"] == 130 and r["status"] in ("completed", "interrupted")
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_output_imitating_markers_ends_nothing(sane_ctx: Context, pane: str) -> None:
    fake = ("printf '\\033]7770;SANE;0123456789abcdef;E;0\\007'; "
            "printf '\\033]7770;SANE;0123456789abcdef;P;9\\007'; "
            "printf '\\033]7770;SANE;0123456789abcdef;X;4\\007'; "
            "echo after; (exit 5)")
    r = run(sane_ctx, pane, fake)
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 5, "after\n")


def test_five_thousand_character_line(sane_ctx: Context, pane: str) -> None:
    word = "".join(chr(0x61 + i % 26) for i in range(5000))
    r = run(sane_ctx, pane, f"echo {word}; echo {word} | wc -c")
    assert r["output"].split() == [word, "5001"]


def test_utf8(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf '%s\\n' '日本語 ｗｉｄｅ 🎉👩‍💻 é'; printf '\\303\\251\\n'")
    assert r["output"] == "日本語 ｗｉｄｅ 🎉👩‍💻 é\né\n"


def test_heredoc(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "cat <<'EOF'\n$HOME `x` \"q\" 'a'\n\tend\nEOF\nx=5; cat <<EOF\n$x\nEOF")
    assert r["output"] == "$HOME `x` \"q\" 'a'\n\tend\n5\n"


@pytest.mark.parametrize("command", HAZARDS)
def test_quoting_hazards(sane_ctx: Context, pane: str, shell: str, command: str) -> None:
    expected = reference(shell, command)
    r = run(sane_ctx, pane, command, keep_ansi=True)
    assert r["exit_code"] == expected.returncode
    assert output_bytes(r) == expected.stdout + expected.stderr


def test_cwd_and_env_persist(sane_ctx: Context, pane: str, tmp_path: Path) -> None:
    run(sane_ctx, pane, f"cd {tmp_path} && SANE_T=42 && export SANE_T && greet() {{ echo hi $1; }}")
    r = run(sane_ctx, pane, "pwd; echo $SANE_T; greet you; sh -c 'echo $SANE_T'")
    assert r["output"] == f"{tmp_path}\n42\nhi you\n42\n"
    run(sane_ctx, pane, "false")
    assert run(sane_ctx, pane, "echo $?")["output"] == "1\n"


def test_timeout_then_wait(sane_ctx: Context, pane: str) -> None:
    first = run(sane_ctx, pane, "echo one; sleep 1.5; echo two; (exit 4)", timeout=0.3)
    assert (first["status"], first["exit_code"]) == ("running", None)
    rest = dict(run_wait(sane_ctx, first["run_id"], timeout=30))
    assert (rest["status"], rest["exit_code"]) == ("completed", 4)
    assert first["output"] + rest["output"] == "one\ntwo\n"
    assert rest["output_start"] == len(first["output"])


def test_prompt_then_input(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf 'Name? '; read x; echo \"hi $x\"", timeout=10)
    assert (r["status"], r["prompt"], r["output"]) == ("waiting_input", "Name? ", "Name? ")
    done = dict(run_input(sane_ctx, r["run_id"], "Ann"))
    assert (done["status"], done["exit_code"], done["output"]) == ("completed", 0, "Ann\nhi Ann\n")


def test_interrupt(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "echo start; sleep 30", timeout=0.3)
    assert r["status"] == "running"
    stopped = dict(run_interrupt(sane_ctx, r["run_id"]))
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130)
    assert r["output"] + stopped["output"] == "start\n"
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_interrupt_after_a_partial_line(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf partial; sleep 30", timeout=0.3)
    seen = [r]
    while seen[-1]["status"] == "running" and "".join(p["output"] for p in seen) != "partial":
        seen.append(dict(run_wait(sane_ctx, r["run_id"], timeout=0.2)))
    stopped = dict(run_interrupt(sane_ctx, r["run_id"]))
    # Nothing of the C-c echo or of the shell's prompt-line tricks (zsh, yash) is output.
    assert (stopped["status"], stopped["exit_code"], stopped["output"]) == ("interrupted", 130, "")
    assert "".join(p["output"] for p in seen) == "partial"



def test_detect_platform(sane_ctx: Context, pane: str, shell: str) -> None:
    """The running shell is the pane's, the login shell the password database's."""
    import os
    import pwd

    from sane.ops.detect_platform import detect_platform

    info = detect_platform(sane_ctx, pane=pane)
    assert info["shell"]["name"] == shell
    assert info["login_shell"]["path"] == pwd.getpwuid(os.getuid()).pw_shell
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"


def test_create_file(sane_ctx: Context, pane: str, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    target = tmp_path / "f.bin"
    for _ in range(2):  # the second time over an existing file
        result = create_file(sane_ctx, str(target), data, pane=pane)
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert target.read_bytes() == data
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"
