"""The shell matrix: one exactness suite run in every shell sane supports.

Each test runs in each shell of ``POSIX_SHELLS`` twice, against real tmux: in a local
pane (clean rc files), and as the login shell of root on a loopback sshd of its own
(``sane.testing.fleet``: its own ``/etc/passwd`` in the server's mount namespace),
reached through sane's ssh pane, the system rc files of each shell read as on any host.
Expected outputs come from the same shell running the same command with ``-c`` where
the shell itself decides the bytes.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.panes import pane_for_server
from sane.fleet.registry import Registry, Server
from sane.ops import takeover
from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.ops.run.resume import run_input, run_interrupt, run_wait
from sane.poll import poll
from sane.protocol import markers
from sane.protocol.runner import shell_name, shell_probe
from sane.testing.fleet import Fleet, FleetUnavailable
from sane.testing.fleet import Server as FleetServer
from sane.testing.pytest_plugin import SHELL_COMMANDS, TmuxTestServer
from sane.tmux.command import quote

from .conftest import interrupted_on_timeout, output_bytes, run
from .test_run_command import HAZARDS

POSIX_SHELLS = ["bash", "dash", "zsh", "ksh93", "mksh", "ash", "yash", "posh"]
SHELLS = [*POSIX_SHELLS, "fish"]


# Each shell's executable as a login shell. busybox runs the applet its argv[0] names
# ("-ash" from a link named ash), as on Alpine.
LOGIN_PATHS = {
    "bash": "/bin/bash",
    "dash": "/bin/dash",
    "zsh": "/usr/bin/zsh",
    "ksh93": "/usr/bin/ksh93",
    "mksh": "/usr/bin/mksh",
    "ash": "ash",
    "yash": "/usr/bin/yash",
    "posh": "/usr/bin/posh",
    "fish": "/usr/bin/fish",
    "tcsh": "/usr/bin/tcsh",
}


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["local", "login"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def one_server_per_shell(
    shells: list[str], prepare: Callable[[Fleet, FleetServer, str], None]
) -> Iterator[dict[str, tuple[Fleet, str]]]:
    """One sshd per shell, that shell root's login shell there: shell -> (fleet, server).

    The body of every per-shell login fixture (here, test_login_queries,
    test_screen_prompt): ``prepare`` readies each server for its shell (sshd options,
    files in its home) before the shell is set."""
    try:
        fleet = Fleet(len(shells))
    except FleetUnavailable as exc:
        pytest.skip(f"ssh test fleet unavailable: {exc.reason}")
    try:
        found = {}
        for srv, name in zip(fleet.servers, shells, strict=True):
            path = LOGIN_PATHS[name]
            if "/" not in path:  # busybox runs the applet its argv[0] names
                link = fleet.base / path
                link.symlink_to(shutil.which("busybox") or "/bin/busybox")
                path = str(link)
            prepare(fleet, srv, name)
            fleet.set_login_shell(srv.name, path)
            found[name] = (fleet, srv.name)
        yield found
    finally:
        fleet.close()


def as_a_user_has_it(fleet: Fleet, srv: FleetServer, name: str) -> None:
    # As Debian's sshd does: the client's locale crosses (yash, in the C locale,
    # cannot hold a non-ASCII byte in a variable).
    fleet.configure_sshd(srv.name, "AcceptEnv LANG LC_*")
    # zsh without a ~/.zshrc starts its new-user menu, yash without a ~/.yashrc
    # loads a sample config (its greeting, another echo style); a user has one.
    (srv.home / ".zshrc").write_text("")
    (srv.home / ".yashrc").write_text("")
    # fish's first interactive start generates completions from every man page
    # (a python job in the shell's own process group, a minute or more under
    # load), as once on any account: the account has logged in before.
    (srv.home / ".local/share/fish/generated_completions").mkdir(parents=True)


@pytest.fixture(scope="module")
def login_fleet() -> Iterator[dict[str, tuple[Fleet, str]]]:
    """One sshd per shell, that shell root's login shell there: shell -> (fleet, server)."""
    yield from one_server_per_shell(list(LOGIN_PATHS), as_a_user_has_it)


def login_pane(ctx: Context, fleet: Fleet, name: str) -> str:
    """sane's ssh pane to ``name`` of ``fleet`` (registered in ``ctx``'s registry)."""
    srv = fleet[name]
    Registry(ctx.home).add(
        Server(
            name=name,
            host=srv.host,
            port=srv.port,
            user="root",
            identity_file=str(fleet.client_key),
            ssh_options={"UserKnownHostsFile": str(fleet.known_hosts)},
        ),
        replace=True,
    )
    return pane_for_server(ctx, name)


@pytest.fixture
def pane(
    request: pytest.FixtureRequest,
    tmux_server: TmuxTestServer,
    sane_ctx: Context,
    shell: str,
    where: str,
) -> str:
    if where == "local":
        return tmux_server.new_pane(shell)
    fleet, name = request.getfixturevalue("login_fleet")[shell]
    return login_pane(sane_ctx, fleet, name)


def reference(shell: str, command: str) -> subprocess.CompletedProcess[bytes]:
    """What ``shell`` prints for ``command`` outside tmux (the expected value)."""
    return subprocess.run(
        [*SHELL_COMMANDS[shell], "-c", command], capture_output=True, check=False, timeout=30
    )


def say(shell: str, posix: str, fish: str) -> str:
    """The same test command in the shell's own syntax (fish is not POSIX)."""
    return fish if shell == "fish" else posix


def test_no_trailing_newline(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf abc")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "abc")


# Exit codes: the cases each shell's syntax has, and only those (a case generated for
# a shell it cannot run would only be skipped).
_EXIT_COMMON = [
    ("false", 1),
    ("false | true", 0),
    ("sh -c 'exit 42'", 42),
    ("sh -c 'kill -TERM $$'", 143),
    ("sh -c 'kill -KILL $$'", 137),
    ("sh -c 'kill -SEGV $$'", 139),
]
_EXIT_POSIX = [
    ("(exit 7)", 7),
    ("(exit 255)", 255),
    ("true | (exit 3)", 3),
    ("f() { return 12; }; f", 12),
]
_EXIT_FISH = [
    ("function f; return 12; end; f", 12),
    ("true | sh -c 'exit 3'", 3),
    ("not true", 1),
]
EXIT_CASES = [
    (name, command, code)
    for name in SHELLS
    for command, code in _EXIT_COMMON + (_EXIT_FISH if name == "fish" else _EXIT_POSIX)
]


# `shell` parametrized here overrides the fixture (the pane fixture takes this value).
@pytest.mark.parametrize("shell,command,code", EXIT_CASES)
def test_exit_codes(sane_ctx: Context, pane: str, shell: str, command: str, code: int) -> None:
    r = run(sane_ctx, pane, command)
    assert (r["status"], r["exit_code"]) == ("completed", code)
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_child_killed_by_sigint(sane_ctx: Context, pane: str, shell: str) -> None:
    # Most interactive shells abandon the whole command line when its foreground
    # child dies of SIGINT, as if C-c had been typed: sane then says `interrupted`.
    r = run(sane_ctx, pane, "sh -c 'kill -INT $$'")
    assert r["exit_code"] == 130 and r["status"] in ("completed", "interrupted")
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_output_imitating_markers_ends_nothing(sane_ctx: Context, pane: str, shell: str) -> None:
    fake = (
        "printf '\\033]7770;SANE;0123456789abcdef;E;0\\007'; "
        "printf '\\033]7770;SANE;0123456789abcdef;P;9\\007'; "
        "printf '\\033]7770;SANE;0123456789abcdef;X;4\\007'; "
        "echo after; " + say(shell, "(exit 5)", "sh -c 'exit 5'")
    )
    r = run(sane_ctx, pane, fake)
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 5, "after\n")


def test_five_thousand_character_line(sane_ctx: Context, pane: str) -> None:
    word = "".join(chr(0x61 + i % 26) for i in range(5000))
    r = run(sane_ctx, pane, f"echo {word}; echo {word} | wc -c")
    assert r["output"].split() == [word, "5001"]


def test_utf8(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf '%s\\n' '日本語 ｗｉｄｅ 🎉👩‍💻 é'; printf '\\303\\251\\n'")
    assert r["output"] == "日本語 ｗｉｄｅ 🎉👩‍💻 é\né\n"


def test_heredoc(sane_ctx: Context, pane: str, shell: str) -> None:
    # fish has no heredoc: the same text as a multi-line quoted word and lines.
    r = run(
        sane_ctx,
        pane,
        say(
            shell,
            "cat <<'EOF'\n$HOME `x` \"q\" 'a'\n\tend\nEOF\nx=5; cat <<EOF\n$x\nEOF",
            "echo '$HOME `x` \"q\" \\'a\\'\n\tend'\nset x 5; echo $x",
        ),
    )
    assert r["output"] == "$HOME `x` \"q\" 'a'\n\tend\n5\n"


FISH_HAZARDS = [
    "echo 'single' \"double\" (echo paren) \\\\ \\$HOME 'it\\'s' \"a\\\"b\"",
    "echo !! '!x' \"!y\" ; echo hist!ory",
    "for i in 1 2 3\n  printf '%s;' \"$i\"\nend\necho",
    "printf '%s\\n' \"a'b\" 'c\"d' 'e\\\\f' 'g$h'",
    "set x '  spaces   kept  '; printf '[%s]\\n' \"$x\"",
    "echo tab\there; echo 'unicode ✓'",
    "echo __SANE_0123 ]7770 '\\033]7770;SANE;'",
    "echo {a,b}c 'x{y}' \"q$status\"",
]


@pytest.mark.parametrize("index", range(len(HAZARDS)))
def test_quoting_hazards(sane_ctx: Context, pane: str, shell: str, index: int) -> None:
    command = say(shell, HAZARDS[index], FISH_HAZARDS[index % len(FISH_HAZARDS)])
    expected = reference(shell, command)
    r = run(sane_ctx, pane, command, keep_ansi=True)
    assert r["exit_code"] == expected.returncode
    assert output_bytes(r) == expected.stdout + expected.stderr


def test_cwd_and_env_persist(sane_ctx: Context, pane: str, shell: str, tmp_path: Path) -> None:
    run(
        sane_ctx,
        pane,
        say(
            shell,
            f"cd {tmp_path} && SANE_T=42 && export SANE_T && greet() {{ echo hi $1; }}",
            f"cd {tmp_path} && set -x SANE_T 42 && function greet; echo hi $argv[1]; end",
        ),
    )
    r = run(sane_ctx, pane, "pwd; echo $SANE_T; greet you; sh -c 'echo $SANE_T'")
    assert r["output"] == f"{tmp_path}\n42\nhi you\n42\n"
    run(sane_ctx, pane, "false")
    assert run(sane_ctx, pane, say(shell, "echo $?", "echo $status"))["output"] == "1\n"


def test_timeout_then_wait(sane_ctx: Context, pane: str, shell: str) -> None:
    first = run(
        sane_ctx,
        pane,
        "echo one; sleep 1.5; echo two; " + say(shell, "(exit 4)", "sh -c 'exit 4'"),
        timeout=0.3,
    )
    assert (first["status"], first["exit_code"]) == ("running", None)
    rest = dict(run_wait(sane_ctx, first["run_id"], timeout=30))
    assert (rest["status"], rest["exit_code"]) == ("completed", 4)
    assert first["output"] + rest["output"] == "one\ntwo\n"
    assert rest["output_start"] == len(first["output"])


def test_prompt_then_input(sane_ctx: Context, pane: str, shell: str) -> None:
    r = run(
        sane_ctx,
        pane,
        say(
            shell,
            "printf 'Name? '; read x; echo \"hi $x\"",
            # fish's read edits the line itself (cursor moves, its missing-newline mark):
            # none of that drawing is output.
            "read -P 'Name? ' x; echo \"hi $x\"",
        ),
        timeout=10,
    )
    assert (r["status"], r["prompt"], r["output"]) == ("waiting_input", "Name? ", "Name? ")
    done = dict(run_input(sane_ctx, r["run_id"], "Ann"))
    assert (done["status"], done["exit_code"], done["output"]) == ("completed", 0, "Ann\nhi Ann\n")


def _interrupt_once_started(ctx: Context, pane: str, command: str) -> None:
    """Run ``command`` (it prints ``start`` and then waits), interrupt it once ``start``
    came, and check the run is interrupted with exactly that output."""
    r = run(ctx, pane, command, timeout=0.3)
    seen: list[dict[str, Any]] = [r]
    # C-c once the command has begun (a shell's first line may take longer than 0.3 s:
    # fish loads its functions then; a C-c before would cancel the typed line).
    while seen[-1]["status"] == "running" and "".join(p["output"] for p in seen) != "start\n":
        seen.append(dict(run_wait(ctx, r["run_id"], timeout=0.2)))
    assert seen[-1]["status"] == "running"
    stopped: dict[str, Any] = dict(run_interrupt(ctx, r["run_id"]))
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130)
    assert "".join(p["output"] for p in seen) + stopped["output"] == "start\n"


def test_interrupt(sane_ctx: Context, pane: str) -> None:
    _interrupt_once_started(sane_ctx, pane, "echo start; sleep 30")
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"


def test_a_prompt_set_by_the_interrupted_run(sane_ctx: Context, pane: str, shell: str) -> None:
    """The interrupted run set the prompt itself. The C-c skips the runner's end, where
    the prompt marker is put back: the prompt drawn after the interrupt was never
    seen, the screen check kept the prompt from before the run, and the next run was
    refused ``pane_has_input`` against it (mksh, ksh93, yash, ash every time; dash and
    posh when the kernel's echo of the line was slow: a CI flake under load)."""
    set_prompt = say(shell, "PS1='x> '", "function fish_prompt; printf 'x> '; end")
    _interrupt_once_started(sane_ctx, pane, f"{set_prompt}; echo start; sleep 30")
    assert run(sane_ctx, pane, "echo next")["output"] == "next\n"
    assert run(sane_ctx, pane, "cd /; echo moved")["output"] == "moved\n"
    assert run(sane_ctx, pane, "echo again")["output"] == "again\n"


def test_interrupt_after_a_partial_line(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf partial; sleep 30", timeout=0.3)
    seen = [r]
    while seen[-1]["status"] == "running" and "".join(p["output"] for p in seen) != "partial":
        seen.append(dict(run_wait(sane_ctx, r["run_id"], timeout=0.2)))
    stopped = dict(run_interrupt(sane_ctx, r["run_id"]))
    # Nothing of the C-c echo or of the shell's prompt-line tricks (zsh, yash) is output.
    assert (stopped["status"], stopped["exit_code"], stopped["output"]) == ("interrupted", 130, "")
    assert "".join(p["output"] for p in seen) == "partial"


def test_detect_platform(sane_ctx: Context, pane: str, shell: str, where: str) -> None:
    """The running shell is the pane's, the login shell the password database's."""
    import os
    import pwd

    from sane.ops.detect_platform import detect_platform

    info = detect_platform(sane_ctx, pane=pane)
    assert info["shell"]["name"] == shell
    login = pwd.getpwuid(os.getuid()).pw_shell if where == "local" else LOGIN_PATHS[shell]
    assert (info["login_shell"]["path"] or "").endswith(login)
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"


def test_create_file(sane_ctx: Context, pane: str, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    target = tmp_path / "f.bin"
    for _ in range(2):  # the second time over an existing file
        result = create_file(sane_ctx, str(target), data, pane=pane)
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert target.read_bytes() == data
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"


def test_half_typed_text_is_never_run(
    sane_ctx: Context, tmux_server: TmuxTestServer, pane: str, shell: str
) -> None:
    """A person's text left on the command line (issue #14, Measured 4), in every shell
    of the matrix, local and behind ssh: refused with pane_has_input naming it, never
    run; clear_input discards it and runs the command alone."""
    assert run(sane_ctx, pane, "echo warm")["output"] == "warm\n"
    typed = "echo PERSON-RAN #"
    tmux_server.run("send-keys", "-t", pane, "-l", typed)

    def shown() -> bool:
        return typed in tmux_server.run("capture-pane", "-p", "-J", "-t", pane)

    assert poll(shown, 20.0), "the person's text never showed on the pane's line"
    with pytest.raises(errors.PaneHasInput) as caught:
        run(sane_ctx, pane, "echo x", timeout=20)
    assert caught.value.details["text"] in (typed, None), caught.value.details
    r = run(sane_ctx, pane, "echo x", clear_input=True, timeout=20)
    assert (r["status"], r["output"]) == ("completed", "x\n")


def test_terminal_queries_neither_show_nor_wedge(
    sane_ctx: Context, pane: str, shell: str, tmp_path: Path
) -> None:
    """Queries tmux answers in a command's output (issue #14, Measured 6), local and
    behind ssh: the answers' echo is not output, the next run is not stuck and nothing
    else runs (busybox ash ran XTVERSION's answer's tail `cP>|tmux 3.3a`, creating a
    file), with and without XTVERSION (whose letters yash's vi mode took for commands)."""
    work = tmp_path / "work"
    work.mkdir()
    assert run(sane_ctx, pane, f"cd {work}", timeout=20)["exit_code"] == 0
    for queries in (r"\033[6n\033[c\033[>c\033[5n\033[18t", r"\033[6n\033[c\033[>q"):
        r = run(sane_ctx, pane, f"printf '{queries}'; echo done", timeout=20)  # fish alike
        assert (r["status"], r["output"]) == ("completed", "done\n"), r
        assert run(sane_ctx, pane, "echo next", timeout=20)["output"] == "next\n"
    assert sorted(p.name for p in work.iterdir()) == []


def test_unsupported_shell_in_a_local_pane_is_refused_at_once(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """tcsh has no runner: refused before anything is typed, naming the shell."""
    import time

    from sane import errors

    pane = tmux_server.new_pane("env HOME=/nonexistent tcsh -f")
    started = time.monotonic()
    with pytest.raises(errors.ShellUnsupported) as caught:
        run(sane_ctx, pane, "echo hi")
    assert time.monotonic() - started < 5
    assert caught.value.details["shell"] in ("tcsh", "csh")  # tmux names it by its comm
    assert "echo hi" not in tmux_server.run("capture-pane", "-p", "-t", pane)


def test_unsupported_login_shell_gets_a_posix_shell(
    sane_ctx: Context, login_fleet: dict[str, tuple[Fleet, str]], tmp_path: Path
) -> None:
    """tcsh as the login shell over ssh: sane starts sh there, and says so."""
    from sane.ops.detect_platform import detect_platform
    from sane.ops.takeover import OPT_SHELL_NOTE

    fleet, name = login_fleet["tcsh"]
    pane = login_pane(sane_ctx, fleet, name)
    r = run(sane_ctx, pane, f"cd {tmp_path} && x=5; echo $x; (exit 3)")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 3, "5\n")
    assert run(sane_ctx, pane, "pwd")["output"] == f"{tmp_path}\n"
    note = sane_ctx.tmux(["show-options", "-p", "-v", "-t", pane, OPT_SHELL_NOTE])
    assert "tcsh" in note[0] and "sh" in note[0]
    from sane.fleet.panes import connect_many
    from sane.fleet.registry import Registry

    (report,) = connect_many(sane_ctx, [Registry(sane_ctx.home).get(name)])
    assert (report["ok"], report["shell"], report["shell_note"]) == (True, "posix", note[0])
    info = detect_platform(sane_ctx, pane=pane)
    assert info["login_shell"]["name"] == "tcsh" and info["shell"]["name"] == "dash"


# -- prompt frameworks -------------------------------------------------------------------
# Each config as an rc file, the way the framework installs itself: sane's idle and abort
# detection must survive anything that rewrites the prompt before each display.

FRAMEWORKS = {
    "bash-prompt-command": ("bash", "PROMPT_COMMAND='PS1=\"\\u@\\h:\\w\\$ \"'\n"),
    # Debian's system bashrc (its PS1, the chroot name, command-not-found's hook), as a
    # user's ~/.bashrc sources it.
    "bash-etc-bashrc": ("bash", ". /etc/bash.bashrc\n"),
    # starship's bash init: preexec from a DEBUG trap, PS1 rebuilt in PROMPT_COMMAND
    # (colours, the last status, a two-line prompt).
    "bash-starship": (
        "bash",
        r"""
__st_pre() { [ -n "$__st_ran" ] && return; __st_ran=1; __st_t=$SECONDS; }
trap '__st_pre' DEBUG
__st_prompt() { local s=$?; __st_ran=
  PS1="\[\e[1;36m\]\w\[\e[0m\] on \[\e[35m\] main\[\e[0m\] [$s]"$'\n'"\[\e[1;32m\]❯\[\e[0m\] "; }
PROMPT_COMMAND=__st_prompt
""",
    ),
    "zsh-precmd": ("zsh", 'precmd() { PROMPT="%n@%m %~ %# " }\n'),
    # oh-my-zsh's shape: prompt_subst, hooks through add-zsh-hook, the title set before
    # and after each command, a right prompt, colours inside %{ %}.
    "zsh-ohmyzsh": (
        "zsh",
        r"""
autoload -Uz add-zsh-hook
setopt prompt_subst
__omz_title() { setopt localoptions nopromptsubst; print -Pn "\e]0;%n@%m: %~\a" }
__omz_preexec() { setopt localoptions nopromptsubst; print -Pn "\e]0;${1:q}\a" }
add-zsh-hook precmd __omz_title
add-zsh-hook preexec __omz_preexec
__omz_git() { echo "git:(main)" }
PROMPT='%{%F{green}%}➜ %{%f%} %{%F{cyan}%}%c%{%f%} $(__omz_git) '
RPROMPT='%{%F{yellow}%}[%*]%{%f%}'
bindkey -e
""",
    ),
    # powerlevel10k's shape: the instant prompt (a prompt printed before the rc file is
    # done), a two-line prompt rebuilt in precmd, a right prompt, and the transient
    # prompt (the accepted line's prompt redrawn short from zle-line-finish).
    "zsh-p10k": (
        "zsh",
        r"""
print -Pn "%F{blue}%~%f\n%F{green}❯%f "
setopt prompt_subst
__p10k_precmd() { local s=$?
  PROMPT=$'%F{blue}%~%f %(?..%F{red}x '$s$'%f)\n%F{green}❯%f '; RPROMPT='%F{8}%*%f' }
precmd_functions+=(__p10k_precmd)
__p10k_finish() { PROMPT='%F{green}❯%f '; RPROMPT=; zle .reset-prompt }
zle -N zle-line-finish __p10k_finish
""",
    ),
    # yash's sample config, which yash loads for any user without a ~/.yashrc: the
    # prompt in YASH_PS1 (drawn instead of PS1), hooks in PROMPT_COMMAND (an array).
    "yash-sample": ("yash", ". --autoload initialization/sample\n"),
    # The prompt rebuilt before each display, as bash's PROMPT_COMMAND does.
    "yash-prompt-command": ("yash", "PROMPT_COMMAND='PS1=\"${PWD##*/} \\$ \"'\n"),
    # The sample config (emacs mode, its own vi bindings) with vi mode set after it, as
    # a user's ~/.yashrc has it (note of session 12: "yash with `set -o vi` refuses runs").
    "yash-sample-vi": ("yash", ". --autoload initialization/sample\nset -o vi\n"),
}


# The yash frameworks whose panes start in a git repository (the sample's right prompt).
YASH_IN_GIT = frozenset({"yash-sample", "yash-sample-vi"})


def git_init(directory: Path) -> None:
    """Make ``directory`` a git repository on branch ``main``, with a commit (the
    sample's right prompt then shows the branch)."""
    git = ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)


@pytest.fixture(params=sorted(FRAMEWORKS))
def framework_pane(
    request: pytest.FixtureRequest,
    tmux_server: TmuxTestServer,
    sane_ctx: Context,
    tmp_path: Path,
    where: str,
) -> Iterator[str]:
    """A pane of the framework's shell with its config: a local pane, or the login shell
    of that shell's sshd with the config in root's rc file there."""
    shell, rc = FRAMEWORKS[str(request.param)]
    # yash's sample shows a git repository's branch as its right prompt, on the line
    # the screen check of a shell without widgets compares (docs/protocol.md): its
    # panes start in one (the shell's home behind ssh, the test's directory here).
    in_git = str(request.param) in YASH_IN_GIT
    if where == "login":
        fleet, name = request.getfixturevalue("login_fleet")[shell]
        home = fleet[name].home
        rc_file = home / {"bash": ".bash_profile", "yash": ".yashrc"}.get(shell, ".zshrc")
        rc_file.write_text(rc)
        if in_git:
            git_init(home)
        try:
            yield login_pane(sane_ctx, fleet, name)
        finally:
            rc_file.write_text("")
            shutil.rmtree(home / ".git", ignore_errors=True)
        return
    if shell == "yash":
        (tmp_path / "yashrc").write_text(rc)
        (tmp_path / "home").mkdir()
        if in_git:
            git_init(tmp_path)
        # A home of its own, as the login case has: the sample keeps its history in
        # ~/.yash_history (its HISTFILE wins over ours), and with root's real one
        # every test's lines were suggested (`--le-predict`) after the first key a
        # person typed, a prediction long enough to wrap in yash's idea of the width:
        # its redraw put the person's text on the row above (the half-typed case
        # failed in CI: "text never showed").
        command = (
            f"env --chdir={tmp_path} HOME={tmp_path / 'home'} HISTFILE=/dev/null"
            f" yash --rcfile={tmp_path / 'yashrc'} -i"
        )
    elif shell == "bash":
        (tmp_path / "bashrc").write_text(rc)
        command = (
            f"env -u PROMPT_COMMAND HISTFILE=/dev/null bash --noprofile "
            f"--rcfile {tmp_path / 'bashrc'}"
        )
    else:
        (tmp_path / ".zshrc").write_text(rc)
        command = f"env HISTFILE=/dev/null ZDOTDIR={tmp_path} zsh"
    yield tmux_server.new_pane(command)


def test_framework_exactness(sane_ctx: Context, framework_pane: str) -> None:
    pane = framework_pane
    assert run(sane_ctx, pane, "printf abc")["output"] == "abc"
    r = run(sane_ctx, pane, "echo one; (exit 7)")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 7, "one\n")
    fake = "printf '\\033]7770;SANE;0123456789abcdef;E;0\\007'; echo after; (exit 5)"
    assert run(sane_ctx, pane, fake)["exit_code"] == 5
    first = run(sane_ctx, pane, "echo a; sleep 1; echo b", timeout=0.3)
    rest = dict(run_wait(sane_ctx, first["run_id"], timeout=30))
    assert (rest["status"], first["output"] + rest["output"]) == ("completed", "a\nb\n")


def test_framework_interrupt_is_not_a_prompt(
    sane_ctx: Context, framework_pane: str, tmp_path: Path
) -> None:
    """The measured bug: with a prompt rebuilt before each display an interrupt came back
    `waiting_input` with the shell's prompt, the pane stuck `pane_busy`, and `run input`
    typed the answer as a shell command."""
    pane = framework_pane
    r = run(sane_ctx, pane, "echo start; sleep 30", timeout=0.3)
    seen: list[dict[str, Any]] = [r]
    while seen[-1]["status"] == "running" and "".join(p["output"] for p in seen) != "start\n":
        seen.append(dict(run_wait(sane_ctx, r["run_id"], timeout=0.2)))
    stopped: dict[str, Any] = dict(run_interrupt(sane_ctx, r["run_id"]))
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130)
    assert "".join(p["output"] for p in seen) + stopped["output"] == "start\n"
    from sane import errors

    with pytest.raises(errors.RunFinished):
        run_input(sane_ctx, r["run_id"], f"touch {tmp_path}/X")
    assert not (tmp_path / "X").exists()
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"


def test_framework_prompt_then_input(sane_ctx: Context, framework_pane: str) -> None:
    r = run(sane_ctx, framework_pane, "printf 'Name? '; read x; echo \"hi $x\"", timeout=10)
    assert (r["status"], r["prompt"]) == ("waiting_input", "Name? ")
    done = dict(run_input(sane_ctx, r["run_id"], "Ann"))
    assert (done["status"], done["output"]) == ("completed", "Ann\nhi Ann\n")


@pytest.mark.parametrize("change", ["PS1='x> '", ". /etc/bash.bashrc"])
def test_prompt_changed_by_a_run(
    sane_ctx: Context, tmux_server: TmuxTestServer, change: str
) -> None:
    """After a run replaced PS1 (itself, or through the system bashrc), a timed-out run
    is still interrupted: `--interrupt-on-timeout` used to never end it."""
    pane = tmux_server.new_pane("bash")
    assert run(sane_ctx, pane, change)["status"] == "completed"
    r = interrupted_on_timeout(sane_ctx, pane, "echo start; sleep 30")
    assert (r["status"], r["exit_code"], r["output"]) == ("interrupted", 130, "start\n")
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"


def test_fish_started_in_a_bash_pane_gets_fish_runner(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """A person starts fish in a pane sane drove as bash: the next run is typed in fish's
    syntax (a POSIX line would be a syntax error there, the run never ending); back in
    bash after fish exits, the POSIX runner again."""
    from sane.testing import retry_until

    pane = tmux_server.new_pane("bash")
    assert run(sane_ctx, pane, "x=1; echo $x")["output"] == "1\n"

    def foreground() -> str:
        return tmux_server.run(
            "display-message", "-p", "-t", pane, "#{pane_current_command}"
        ).strip()

    tmux_server.run("send-keys", "-t", pane, "fish --no-config", "Enter")
    retry_until(lambda: foreground() == "fish", timeout=10)
    r = run(sane_ctx, pane, "set y 5; echo $y (math $y + 1)")
    assert (r["status"], r["output"]) == ("completed", "5 6\n")
    tmux_server.run("send-keys", "-t", pane, "exit", "Enter")
    retry_until(lambda: foreground() == "bash", timeout=10)
    assert run(sane_ctx, pane, "echo $x; (exit 3)")["exit_code"] == 3


def test_fish_read_prompt_exact_at_any_width(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """fish repaints its own command line while the run's `read` waits, about every
    other first run in a fresh pane (a highlighting of that line finished late): with a
    prompt of 22 columns in 120, sane's typed line takes three rows and the repaint
    clears the read's line from the screen. Output and prompt stay exact (old code:
    'Your name, please: \\r', and the prompt a piece of sane's typed line)."""
    prompt = "function fish_prompt; printf 'user@host ~/some/dir> '; end"
    for _ in range(4):  # fresh panes: the race is the first run's
        pane = tmux_server.new_pane(f"fish --no-config -C {shlex.quote(prompt)}")
        tmux_server.run("resize-window", "-t", pane, "-x", "120", "-y", "50")
        r = run(sane_ctx, pane, "read -P 'Your name, please: ' x; echo \"hi $x\"", timeout=10)
        shown = r["output"]
        for _ in range(6):  # a fresh fish under load may take longer than the first 10 s
            if r["status"] != "running":
                break
            r = dict(run_wait(sane_ctx, r["run_id"], timeout=10))
            shown += r["output"]
        question = "Your name, please: "
        assert (r["status"], r["prompt"], shown) == ("waiting_input", question, question)
        done = dict(run_input(sane_ctx, r["run_id"], "Ann"))
        assert (done["status"], done["output"]) == ("completed", "Ann\nhi Ann\n")


@pytest.mark.parametrize("where", ["local", "login"])
def test_fish_exit(
    sane_ctx: Context, request: pytest.FixtureRequest, tmux_server: TmuxTestServer, where: str
) -> None:
    """`exit` in fish: its fish_exit handler reports the status before the shell goes,
    and the next run has a shell again (a new one: shell_exited says so)."""
    if where == "local":
        pane = tmux_server.new_pane("fish")
    else:
        fleet, name = request.getfixturevalue("login_fleet")["fish"]
        pane = login_pane(sane_ctx, fleet, name)
    run(sane_ctx, pane, "true")
    r = run(sane_ctx, pane, "echo bye; exit 4")
    assert (r["status"], r["exit_code"], r["output"], r["shell_exited"]) == (
        "completed",
        4,
        "bye\n",
        True,
    )
    if where == "login":
        pane = login_pane(sane_ctx, fleet, name)
    assert run(sane_ctx, pane, "echo again; false")["exit_code"] == 1


def test_shell_probe_leaves_no_history(
    sane_ctx: Context, login_fleet: dict[str, tuple[Fleet, str]]
) -> None:
    """A login bash without ignorespace in HISTCONTROL (no ~/.bashrc sets it): the shell
    probe line sane types before its takeover used to stay in the shell's history
    (and ~/.bash_history at exit). The takeover deletes it with its own line."""
    fleet, name = login_fleet["bash"]
    pane = login_pane(sane_ctx, fleet, name)
    r = run(sane_ctx, pane, "echo ${HISTCONTROL-unset}; history | wc -l; history")
    lines = r["output"].splitlines()
    assert lines[0] == "ignorespace"  # sane's takeover added it; it was unset
    assert "7770" not in r["output"] and lines[1] == "0", r["output"]


@pytest.mark.parametrize("shell", [*SHELLS, "tcsh"])
def test_the_shell_probe_starts_no_program_but_sh(shell: str, tmp_path: Path) -> None:
    """The shell probe names the shell that reads it with ``sh`` alone, no ``cat``
    (``/proc`` read by ``sh``'s own ``read``): a fork and an exec less on every
    server a fleet connects. Each shell reads the probe line as it would from the
    pane's prompt (here from its standard input, with a ``PATH`` holding ``sh``
    only); before, the name came from ``$(cat ...)`` and was empty here."""
    (tmp_path / "sh").symlink_to(shutil.which("sh") or "/bin/sh")
    # busybox's ash from `busybox ash` (its comm: busybox, a shell sane drives).
    argv = [shutil.which("busybox") or "busybox", "ash"] if shell == "ash" else [LOGIN_PATHS[shell]]
    nonce = markers.new_nonce()
    out = subprocess.run(
        argv,
        input=f"{shell_probe(nonce)}\nexit\n".encode(),
        capture_output=True,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    found = shell_name(out.stdout, nonce)
    assert found is not None and out.stderr == b"", (out.stdout, out.stderr)
    assert found[1] == Path(argv[0]).name


@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_the_takeover_draws_none_of_its_lines(sane_ctx: Context, pane: str) -> None:
    """A POSIX shell's takeover is one short line that reads the runner's lines from
    the tty with its echo off: ~1 KB drawn, where the ~5 KB of lines pasted at the
    prompt came back as ~11 KB of echo (readline draws a paste twice), through sshd,
    ssh, tmux and sane's control client for every server a fleet connects. The tty's
    echo is back for the commands after it (each shell had it on before)."""
    r = run(sane_ctx, pane, "stty -a")
    screen = "\n".join(sane_ctx.tmux(["capture-pane", "-p", "-J", "-S", "-", "-t", pane]))
    assert "__sane_run" not in screen and "__sane_ps" not in screen, screen
    assert re.search(r"(?<![-\w])echo(?![-\w])", r["output"]), r["output"]


@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_keys_typed_during_the_takeover_never_run(
    request: pytest.FixtureRequest,
    sane_ctx: Context,
    shell: str,
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #14, "nothing the person typed runs": a person types into the pane while
    the bootstrap's loop reads the takeover's lines (echo off, so blind): a whole line,
    then a half line that the runner's first line joins. Only lines carrying the
    takeover's tag run; the rest is discarded, never run, and the run that took the
    shell over is refused naming it (``pane_has_input``); the next run goes ahead.
    Before, the loop ``eval``ed both: the file was made, the directory deleted. The
    person's keys are sent by tmux in the same command line as, and just before, the
    runner's lines: the one moment the loop reads and sane has not yet sent them."""
    victim, mark = tmp_path / "DIR", tmp_path / "made"
    victim.mkdir()
    typed = [f"touch {mark}", f"rm -rf {victim} #"]
    plain_paste = takeover._paste

    def paste_after_a_person(
        pane: str, lines: list[str], nonce: str, bracketed: bool = True
    ) -> list[str]:
        person = []
        if not bracketed:  # the runner's lines, for the bootstrap's loop
            person = [
                f"send-keys -t {pane} -l -- {quote(typed[0])}",
                f"send-keys -t {pane} Enter",
                f"send-keys -t {pane} -l -- {quote(typed[1])}",
            ]
        return [*person, *plain_paste(pane, lines, nonce, bracketed)]

    monkeypatch.setattr(takeover, "_paste", paste_after_a_person)
    with pytest.raises(errors.PaneHasInput) as caught:
        if where == "local":
            pane = request.getfixturevalue("tmux_server").new_pane(shell)
            run(sane_ctx, pane, "echo x")
        else:
            fleet, name = request.getfixturevalue("login_fleet")[shell]
            login_pane(sane_ctx, fleet, name)
    assert caught.value.details["text"] == "\n".join(typed), caught.value.details
    assert victim.is_dir() and not mark.exists()
    monkeypatch.undo()
    pane = caught.value.details["pane"]
    r = run(sane_ctx, pane, "echo x; stty -a")
    assert r["output"].startswith("x\n") and re.search(r"(?<![-\w])echo(?![-\w])", r["output"])
    assert victim.is_dir() and not mark.exists()


# -- #14 item 7: a user's EXIT trap is the user's -----------------------------------------


def _user_exit_trap(shell: str, said: Path, say_also: str = "") -> str:
    """A command setting the user's own exit handler, appending ``bye`` to ``said``
    (and, in a POSIX shell, printing ``say_also`` if given)."""
    also = f"; echo {say_also}" if say_also else ""
    return say(
        shell,
        f"trap 'echo bye >> {said}{also}' EXIT",
        f"function __user_bye --on-event fish_exit; echo bye >> {said}; end",
    )


def _ended_by_exit(
    ctx: Context, pane: str, result: dict[str, Any], exact: bool, output: str = "last\n"
) -> None:
    """How a run's ``exit 5`` ends once the user has an exit handler. ``exact``: sane's
    marker comes after the user's handler (fish runs every ``fish_exit`` handler; a
    POSIX shell's trap sane found at the takeover runs inside sane's): ``completed``,
    the output whole. Else the user's trap ran instead of sane's: the run ends with the
    pane's death, ``lost`` (tmux drops what it had not yet sent of a pane whose process
    died: docs/protocol.md), its output a true prefix, with the shell's exit status as
    tmux keeps it, or ``None`` when tmux has none (tmux 3.3a, now and then)."""
    got = (result["status"], result["exit_code"], result["shell_exited"])
    if exact:
        assert (*got, result["output"]) == ("completed", 5, True, output)
        return
    known = ctx.tmux(["display", "-p", "-t", pane, "#{pane_dead_status}"])
    assert (
        got == ("lost", 5, True)
        if known == ["5"]
        else got in {("lost", 5, True), ("lost", None, True)}
    )
    assert output.startswith(result["output"])


def _pane_with_a_trap_set_by_hand(
    tmux_server: TmuxTestServer, shell: str, said: Path, tmp_path: Path
) -> str:
    """A new pane of ``shell`` whose user set an exit handler by hand before sane's
    first run (appending ``bye`` to ``said``, printing ``cleanup`` in a POSIX shell)."""
    typed = tmp_path / "typed"
    pane = tmux_server.new_pane(shell)
    setting = f"{_user_exit_trap(shell, said, 'cleanup')}; touch {typed}"
    tmux_server.run("send-keys", "-t", pane, setting, "Enter")
    assert poll(typed.exists, 10)
    # The file exists before `touch` has exited: until tmux sees the shell in front
    # again, a run is refused (pane_not_shell: "running 'touch'", seen once at load 15).
    assert poll(lambda: _foreground(tmux_server, pane) != "touch", 10)
    return pane


def _foreground(tmux_server: TmuxTestServer, pane: str) -> str:
    return tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}").strip()


def test_a_users_exit_trap_runs_once_at_the_shells_exit(
    sane_ctx: Context, pane: str, shell: str, tmp_path: Path
) -> None:
    """Set in one run, the user's exit handler outlasts later runs (never replaced,
    never run when a run ends) and runs once, when a later run's ``exit`` ends the
    shell, whose status is the run's exit code. In zsh the trap set in a run is kept
    inside sane's (zsh keeps a trap set in a function to the function, and sane's
    runner evals each command in one), as one from before the takeover is, so the run
    that exits is exact; elsewhere the user's trap replaced sane's."""
    said = tmp_path / "said"
    run(sane_ctx, pane, _user_exit_trap(shell, said))
    for command in ("echo one", "false", say(shell, "(exit 3)", "sh -c 'exit 3'")):
        run(sane_ctx, pane, command)
    assert not said.exists()
    r = run(sane_ctx, pane, "echo last; exit 5", timeout=15)
    _ended_by_exit(sane_ctx, pane, r, exact=shell in {"fish", "zsh"})
    assert said.read_text() == "bye\n"


def test_an_exit_trap_set_before_the_takeover_survives_it(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """A trap the user set by hand (or in an rc file) before sane's first run in the
    pane is still theirs after the takeover: it runs at the shell's exit, inside sane's
    own, so the run that exits is exact, the trap's output included. (dash, zsh, mksh
    and posh show no trap in ``$(trap)``: sane's takeover replaced it there; in the
    others sane set no trap and the run was ``lost``.)"""
    said = tmp_path / "said"
    pane = _pane_with_a_trap_set_by_hand(tmux_server, shell, said, tmp_path)
    assert run(sane_ctx, pane, "echo one")["output"] == "one\n"
    r = run(sane_ctx, pane, "echo last; exit 5", timeout=15)
    _ended_by_exit(sane_ctx, pane, r, exact=True, output=say(shell, "last\ncleanup\n", "last\n"))
    assert said.read_text() == "bye\n"


def test_an_exit_line_the_command_prints_is_its_output(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """A line ``exit`` the command itself prints before its ``exit`` is output like any
    other, with and without a user's trap kept from before the takeover. Only bash
    prints an ``exit`` line of its own, which is not output (its exit trap tells sane,
    a BASH_EXIT_LINE marker); the same line from dash, zsh, mksh... was dropped, and
    the run still said ``completed``."""
    plain = tmux_server.new_pane(shell)
    r = run(sane_ctx, plain, "echo one; echo exit; exit 5", timeout=15)
    _ended_by_exit(sane_ctx, plain, r, exact=True, output="one\nexit\n")
    said = tmp_path / "said"
    trapped = _pane_with_a_trap_set_by_hand(tmux_server, shell, said, tmp_path)
    r = run(sane_ctx, trapped, "echo exit; exit 5", timeout=15)
    _ended_by_exit(sane_ctx, trapped, r, exact=True, output=say(shell, "exit\ncleanup\n", "exit\n"))
    assert said.read_text() == "bye\n"


def test_an_exit_trap_the_user_removed_stays_removed(
    sane_ctx: Context, tmux_server: TmuxTestServer, shell: str, tmp_path: Path
) -> None:
    """A user's trap kept at the takeover and then removed (``trap - EXIT``) does not
    come back when sane takes the same shell over again: its action, a cleanup that
    may delete files, must never run at the shell's exit."""
    if shell == "fish":
        pytest.skip("fish: exit handlers are functions, not kept by sane's takeover")
    said = tmp_path / "said"
    pane = _pane_with_a_trap_set_by_hand(tmux_server, shell, said, tmp_path)
    assert run(sane_ctx, pane, "echo one")["output"] == "one\n"
    run(sane_ctx, pane, "trap - EXIT")
    # sane forgets the runner (as after a shell it cannot prove the same): the next run
    # takes this same shell over again.
    tmux_server.run("set-option", "-p", "-u", "-t", pane, "@sane_shell_pid")
    assert run(sane_ctx, pane, "echo two")["output"] == "two\n"
    r = run(sane_ctx, pane, "echo last; exit 5", timeout=15)
    _ended_by_exit(sane_ctx, pane, r, exact=True, output="last\n")
    assert not said.exists()


@pytest.mark.parametrize("framework_pane", sorted(YASH_IN_GIT), indirect=True)
def test_yash_right_prompt_is_part_of_the_prompt(
    sane_ctx: Context, tmux_server: TmuxTestServer, framework_pane: str
) -> None:
    """yash's sample in a git repository draws the branch as its right prompt, on the
    prompt's line: every run was refused as `pane_has_input` (the screen line was not
    the bare prompt). Runs are exact; the right prompt is still drawn for the person;
    a person's text, also moved left of the cursor (Home), is still refused, named
    without the right prompt, and never runs."""
    pane = framework_pane
    r = run(sane_ctx, pane, "echo one; (exit 3)")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 3, "one\n")
    right = tmux_server.run("display-message", "-p", "-t", pane, "#{@sane_prompt_right}")
    assert right.strip().endswith("main"), right
    assert run(sane_ctx, pane, "printf abc")["output"] == "abc"

    def cursor() -> tuple[int, str]:
        x, y = tmux_server.run(
            "display-message", "-p", "-t", pane, "#{cursor_x} #{cursor_y}"
        ).split()
        rows = tmux_server.run("capture-pane", "-p", "-t", pane).split("\n")
        return int(x), rows[int(y)]

    at, line = cursor()
    assert line.rstrip().endswith("main") and not line[at:].strip().startswith("e"), line
    typed = "echo PERSON-RAN #"
    tmux_server.run("send-keys", "-t", pane, "-l", typed)
    assert poll(lambda: typed in cursor()[1], 20.0), "the person's text never showed"
    with pytest.raises(errors.PaneHasInput) as caught:
        run(sane_ctx, pane, "echo x", timeout=20)
    assert caught.value.details["text"] == typed, caught.value.details
    tmux_server.run("send-keys", "-t", pane, "Home")
    assert poll(lambda: cursor()[0] == at, 20.0), "Home never moved the cursor"
    with pytest.raises(errors.PaneHasInput) as caught:
        run(sane_ctx, pane, "echo x", timeout=20)
    assert caught.value.details["text"] == typed, caught.value.details
    r = run(sane_ctx, pane, "echo x", clear_input=True, timeout=20)
    assert (r["status"], r["output"]) == ("completed", "x\n")
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"
    at, line = cursor()
    assert line.rstrip().endswith("main") and "PERSON" not in line, line


def test_yash_right_prompt_set_by_a_run_and_one_without_room(
    sane_ctx: Context, tmux_server: TmuxTestServer
) -> None:
    """A right prompt a run sets is drawn (and recorded) from the next prompt on. One
    yash has no room for (a prompt reaching the margin) is not drawn, nor its end
    marker: the prompt is recorded without it, as the screen shows it, so runs go on;
    a person's text there is still refused and never runs."""
    pane = tmux_server.new_pane("yash")
    assert run(sane_ctx, pane, "YASH_PS1R='<R>'; PS1='y$ '")["output"] == ""
    r = run(sane_ctx, pane, "echo one; (exit 4)")
    assert (r["status"], r["exit_code"], r["output"]) == ("completed", 4, "one\n")

    def line() -> str:
        y = int(tmux_server.run("display-message", "-p", "-t", pane, "#{cursor_y}"))
        return tmux_server.run("capture-pane", "-p", "-t", pane).split("\n")[y].rstrip()

    assert line().startswith("y$ ") and line().endswith(" <R>"), line()
    # yash's width: $COLUMNS from its environment where set, else the terminal's.
    wide = 'PS1=$(printf "%0$((${COLUMNS:-$(stty size | cut -d" " -f2)} - 6))d" 0)"$ "'
    assert run(sane_ctx, pane, wide)["output"] == ""
    assert "<R>" not in line() and line().endswith("0$"), line()
    assert run(sane_ctx, pane, "echo two")["output"] == "two\n"
    typed = "echo PERSON-RAN #"
    tmux_server.run("send-keys", "-t", pane, "-l", typed)
    assert poll(lambda: "PERSON" in tmux_server.run("capture-pane", "-p", "-J", "-t", pane), 20.0)
    with pytest.raises(errors.PaneHasInput):
        run(sane_ctx, pane, "echo x", timeout=20)
    r = run(sane_ctx, pane, "echo x", clear_input=True, timeout=20)
    assert (r["status"], r["output"]) == ("completed", "x\n")


@pytest.mark.parametrize("shell", ["bash", "yash"])
def test_long_commands_leave_no_history(
    sane_ctx: Context, tmux_server: TmuxTestServer, pane: str, shell: str
) -> None:
    """A long command travels as a heredoc, whose lines yash keeps in its history each
    as an entry of its own (and its sample config then suggests them as a person
    types): now space-led, with yash's histspace on, as bash's ignorespace, so none is
    kept. A person's own command still is."""
    long = "echo " + "é" * 10 + "; : " + "x" * 6000
    assert run(sane_ctx, pane, long)["output"] == "é" * 10 + "\n"
    tmux_server.run("send-keys", "-t", pane, "-l", "echo mine")
    tmux_server.run("send-keys", "-t", pane, "Enter")
    assert poll(
        lambda: "\nmine" in tmux_server.run("capture-pane", "-p", "-J", "-t", pane), 20.0
    ), "the person's command never ran"
    listed = run(sane_ctx, pane, "history; echo end")["output"]
    assert "echo mine" in listed and listed.endswith("end\n"), listed
    assert not [line for line in listed.splitlines()[:-1] if "echo mine" not in line], listed
