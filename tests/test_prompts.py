"""Prompt detection (`waiting_input`) and `run input`, against real tmux, sudo and sshd.

A run that blocks on a prompt comes back `waiting_input` long before its timeout
(10 s here: a `running` result would mean detection failed); a run that is merely
quiet never does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.panes import pane_for_server
from sane.fleet.run import fleet_run
from sane.ops import prompts
from sane.ops.context import Context
from sane.ops.run.resume import run_input, run_interrupt, run_wait
from sane.schema import validate
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux import panes

from .conftest import cli, run

PYTHON = shlex.quote(sys.executable)


def answer(ctx: Context, run_id: str, text: str, **options: Any) -> dict[str, Any]:
    result = dict(run_input(ctx, run_id, text, **options))
    validate("run-command", {"ok": True, "schema_version": 1, **result})
    return result


def test_read_prompt_answered(sane_ctx: Context, pane: str, shell: str) -> None:
    r = run(
        sane_ctx,
        pane,
        "echo before; read -p 'Name? ' n; echo hello $n; exit_with() { return 4; }; exit_with",
        timeout=10,
    )
    assert (r["status"], r["exit_code"], r["output"]) == ("waiting_input", None, "before\nName? ")
    assert (r["prompt"], r["waiting_reason"]) == ("Name? ", "tty_read")
    assert r["waiting_program"] == shell  # the builtin `read`: the shell itself waits
    done = answer(sane_ctx, r["run_id"], "Ada Lovelace")
    assert (done["status"], done["exit_code"]) == ("completed", 4)
    assert done["output"] == "Ada Lovelace\nhello Ada Lovelace\n"
    assert done["output_start"] == len("before\nName? ")
    assert (done["prompt"], done["waiting_reason"], done["waiting_program"]) == (None, None, None)
    assert run(sane_ctx, pane, "echo $n")["output"] == "Ada Lovelace\n"  # same shell


def test_literal_text_and_two_prompts(sane_ctx: Context, tmux_server: TmuxTestServer) -> None:
    pane = tmux_server.new_pane("bash")
    r = run(
        sane_ctx,
        pane,
        "read -r -p 'A: ' a; read -r -p 'B: ' b; printf '<%s|%s>' \"$a\" \"$b\"",
        timeout=10,
    )
    assert (r["status"], r["prompt"]) == ("waiting_input", "A: ")
    tricky = "-x 'q\" $(id) ; `x` \\ C-c #{pane_id} #(id) ##"
    second = answer(sane_ctx, r["run_id"], tricky)
    assert (second["status"], second["prompt"], second["output"]) == (
        "waiting_input",
        "B: ",
        tricky + "\nB: ",
    )
    partial = answer(sane_ctx, r["run_id"], "half", enter=False)
    assert partial["status"] == "waiting_input" and partial["output"] == "half"
    done = answer(sane_ctx, r["run_id"], "-way")
    assert (done["status"], done["exit_code"]) == ("completed", 0)
    assert done["output"] == f"-way\n<{tricky}|half-way>"


def test_quiet_command_is_never_waiting_input(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "echo start; sleep 3; echo end", timeout=2)
    assert (r["status"], r["output"], r["prompt"], r["waiting_reason"]) == (
        "running",
        "start\n",
        None,
        None,
    )
    done = dict(run_wait(sane_ctx, r["run_id"], timeout=10))
    assert (done["status"], done["exit_code"], done["output"]) == ("completed", 0, "end\n")


def test_quiet_period_zero_disables_detection(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "read -r x; echo got $x", timeout=1, quiet_period=None)
    assert r["status"] == "running"
    waited = dict(run_wait(sane_ctx, r["run_id"], timeout=10))
    assert (waited["status"], waited["output"], waited["waiting_reason"]) == (
        "waiting_input",
        "",
        "tty_read",
    )
    done = answer(sane_ctx, r["run_id"], "yes")
    assert (done["status"], done["output"]) == ("completed", "yes\ngot yes\n")


def test_python_repl(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, f"{PYTHON} -q", timeout=10)
    assert (r["status"], r["prompt"], r["output"]) == ("waiting_input", ">>> ", ">>> ")
    assert r["waiting_reason"] == "tty_read"
    more = answer(sane_ctx, r["run_id"], "print(6 * 7)")
    assert (more["status"], more["prompt"], more["output"]) == (
        "waiting_input",
        ">>> ",
        "print(6 * 7)\n42\n>>> ",
    )
    done = answer(sane_ctx, r["run_id"], "exit(3)")
    assert (done["status"], done["exit_code"], done["output"]) == ("completed", 3, "exit(3)\n")


def test_pager(sane_ctx: Context, pane: str, tmp_path: Path) -> None:
    long = tmp_path / "long.txt"
    long.write_text("".join(f"line {i}\n" for i in range(1, 501)))
    r = run(sane_ctx, pane, f"less {shlex.quote(str(long))}", timeout=10)
    assert (r["status"], r["waiting_reason"], r["waiting_program"]) == (
        "waiting_input",
        "tty_read",
        "less",
    )
    assert "line 1\n" in r["output"] and "line 500" not in r["output"]
    # less ignores C-c: it still waits, and says so.
    still = dict(run_interrupt(sane_ctx, r["run_id"]))
    assert (still["status"], still["waiting_program"]) == ("waiting_input", "less")
    done = answer(sane_ctx, r["run_id"], "q", enter=False)
    assert (done["status"], done["exit_code"]) == ("completed", 0)
    assert run(sane_ctx, pane, "echo after")["output"] == "after\n"


def test_interrupt_a_waiting_run(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "printf 'Continue? [y/N] '; read a", timeout=10)
    assert (r["status"], r["prompt"]) == ("waiting_input", "Continue? [y/N] ")
    stopped = dict(run_interrupt(sane_ctx, r["run_id"]))
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130)
    assert run(sane_ctx, pane, "echo free")["output"] == "free\n"


def test_input_for_a_finished_run_types_nothing(sane_ctx: Context, pane: str) -> None:
    r = run(sane_ctx, pane, "read -r a; echo got $a", timeout=10)
    assert answer(sane_ctx, r["run_id"], "one")["status"] == "completed"
    with pytest.raises(errors.RunFinished):
        run_input(sane_ctx, r["run_id"], "touch /tmp/never")
    assert run(sane_ctx, pane, "echo $a")["output"] == "one\n"


def test_sudo_password_prompt(
    sane_ctx: Context, tmux_server: TmuxTestServer, sane_home: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("sudo") is None:
        pytest.skip("needs root and sudo (bin/sane-bootstrap installs it)")
    pane = tmux_server.new_pane(
        "setpriv --reuid=65534 --regid=65534 --clear-groups env PS1='$ ' bash --norc --noprofile"
    )
    r = run(sane_ctx, pane, "sudo -k; sudo -p '[sudo] password for %p: ' true", timeout=10)
    assert (r["status"], r["waiting_reason"], r["waiting_program"]) == (
        "waiting_input",
        "tty_read",
        "sudo",
    )
    assert r["prompt"] == "[sudo] password for nobody: "
    secret = "not-the-password-7f3a"
    again = answer(sane_ctx, r["run_id"], secret, timeout=30)
    assert (again["status"], again["prompt"]) == ("waiting_input", "[sudo] password for nobody: ")
    assert "Sorry, try again." in again["output"] and secret not in again["output"]
    stopped = dict(run_interrupt(sane_ctx, r["run_id"]))
    assert stopped["status"] == "interrupted" and stopped["exit_code"] != 0
    for path in (sane_home / "runs").rglob("*"):  # the answer is in no record
        assert path.is_dir() or secret.encode() not in path.read_bytes()


@pytest.mark.parametrize("relay", ["script -eqc {} /dev/null", "sudo -- sh -c {}"])
def test_prompt_behind_a_terminal_relay(
    sane_ctx: Context, tmux_server: TmuxTestServer, relay: str
) -> None:
    # script, and sudo with use_pty (Debian's default), run the command on a pty of
    # their own and relay the pane's keys: the waiting is seen on that inner terminal.
    tool = relay.split()[0]
    if shutil.which(tool) is None or (tool == "sudo" and os.geteuid() != 0):
        pytest.skip(f"needs {tool} (and root for a password-less sudo)")
    pane = tmux_server.new_pane("bash")
    r = run(sane_ctx, pane, relay.format(shlex.quote(f"{PYTHON} -q")), timeout=10)
    assert (r["status"], r["prompt"], r["waiting_reason"]) == ("waiting_input", ">>> ", "tty_read")
    assert r["waiting_program"] == os.path.basename(sys.executable)[:15]
    done = answer(sane_ctx, r["run_id"], "raise SystemExit(5)")
    assert (done["status"], done["exit_code"]) == ("completed", 5)
    quiet = run(sane_ctx, pane, relay.format("'sleep 3'"), timeout=2)
    assert quiet["status"] == "running"
    assert dict(run_wait(sane_ctx, quiet["run_id"], timeout=10))["status"] == "completed"


def test_ssh_host_key_question(sane_ctx: Context, pane: str, ssh_fleet: Any) -> None:
    server = ssh_fleet.servers[0]
    ssh = (
        f"ssh -i {ssh_fleet.client_key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=ask "
        "-o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null "
        f"-p {server.port} root@{server.host} true"
    )
    r = run(sane_ctx, pane, ssh, timeout=10)
    assert (r["status"], r["waiting_reason"], r["waiting_program"]) == (
        "waiting_input",
        "tty_read",
        "ssh",
    )
    assert r["prompt"] == "Are you sure you want to continue connecting (yes/no/[fingerprint])? "
    assert "can't be established" in r["output"]
    done = answer(sane_ctx, r["run_id"], "no")
    assert (done["status"], done["exit_code"]) == ("completed", 255)
    assert done["output"] == "no\nHost key verification failed.\r\n"


def test_ssh_pane_reads_the_remote_process_state(sane_ctx: Context, ssh_fleet: Any) -> None:
    register(sane_ctx.home, ssh_fleet)
    pane = pane_for_server(sane_ctx, "s2")
    # Locally the pane's foreground is the ssh client, busy in poll(): a tty_read can
    # only come from the remote /proc, read through the side channel.
    r = run(sane_ctx, pane, "read -p 'Name? ' n; echo hello $n from $FLEET_HOST", timeout=10)
    assert (r["status"], r["prompt"], r["waiting_reason"], r["waiting_program"]) == (
        "waiting_input",
        "Name? ",
        "tty_read",
        "bash",
    )
    done = answer(sane_ctx, r["run_id"], "Ada")
    assert (done["status"], done["exit_code"], done["output"]) == (
        "completed",
        0,
        "Ada\nhello Ada from s2\n",
    )
    quiet = run(sane_ctx, pane, "sleep 3", timeout=2)
    assert quiet["status"] == "running"
    assert dict(run_wait(sane_ctx, quiet["run_id"], timeout=10))["status"] == "completed"
    # Behind a relay on the remote side (script: a pty of its own), the inner terminal.
    relayed = run(
        sane_ctx, pane, "script -eqc \"read -p 'Inner? ' x; exit 3\" /dev/null", timeout=10
    )
    assert (relayed["status"], relayed["prompt"], relayed["waiting_reason"]) == (
        "waiting_input",
        "Inner? ",
        "tty_read",
    )
    assert relayed["waiting_program"] in ("sh", "bash", "dash")
    done = answer(sane_ctx, relayed["run_id"], "y")
    assert (done["status"], done["exit_code"]) == ("completed", 3)


def test_fleet_run_reports_each_servers_prompt(sane_ctx: Context, ssh_fleet: Any) -> None:
    servers = register(sane_ctx.home, ssh_fleet)
    result = fleet_run(sane_ctx, servers, "read -p 'Go? ' a; echo $a on $FLEET_HOST", timeout=20)
    assert result["counts"]["waiting_input"] == len(servers)
    for report in result["results"]:
        assert (report["status"], report["prompt"], report["waiting_reason"]) == (
            "waiting_input",
            "Go? ",
            "tty_read",
        )
        done = answer(sane_ctx, report["run_id"], "go")
        assert (done["status"], done["output"]) == ("completed", f"go\ngo on {report['server']}\n")


def test_ssh_pane_without_side_channel_falls_back_to_the_prompt_text(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    register(sane_ctx.home, ssh_fleet)
    pane = pane_for_server(sane_ctx, "s3")
    sane_ctx.tmux(["set-option", "-p", "-u", "-t", pane, panes.OPT_SIDE_CHANNEL])
    try:
        r = run(sane_ctx, pane, "read -p 'Name? ' n; echo hi $n", timeout=10)
        assert (r["status"], r["prompt"], r["waiting_reason"], r["waiting_program"]) == (
            "waiting_input",
            "Name? ",
            "prompt_pattern",
            None,
        )
        assert answer(sane_ctx, r["run_id"], "x")["output"] == "x\nhi x\n"
        quiet = run(sane_ctx, pane, "echo working; sleep 3", timeout=2)
        assert quiet["status"] == "running"
        assert dict(run_wait(sane_ctx, quiet["run_id"], timeout=10))["status"] == "completed"
    finally:
        sane_ctx.server.run("kill-pane", "-t", pane)  # the next test gets a fresh pane


def test_cli_run_input_from_stdin(cli_env: dict[str, str], tmux_server: TmuxTestServer) -> None:
    pane = tmux_server.new_pane("dash")
    status, first, _ = cli(
        [
            "sane.cli.run_command",
            "--pane",
            pane,
            "--timeout",
            "10",
            "printf 'Token: '; read t; echo \"len ${#t}\"",
        ],
        cli_env,
    )
    assert status == 4 and (first["status"], first["prompt"]) == ("waiting_input", "Token: ")
    validate("run-command", first)
    status, waited, _ = cli(
        ["sane.cli.main", "run", "wait", first["run_id"], "--timeout", "10"], cli_env
    )
    assert status == 4 and (waited["status"], waited["output"]) == ("waiting_input", "")
    status, done, _ = cli(
        ["sane.cli.main", "run", "input", first["run_id"], "-"], cli_env, stdin="s3cr3t\n"
    )
    assert status == 0 and (done["status"], done["output"]) == ("completed", "s3cr3t\nlen 6\n")
    status, again, _ = cli(["sane.cli.main", "run", "input", first["run_id"], "x"], cli_env)
    assert status == 2 and again["error"]["code"] == "run_finished"
    status, off, _ = cli(
        ["sane.cli.run_command", "--pane", pane, "--timeout", "1", "--quiet-period", "0", "read t"],
        cli_env,
    )
    assert status == 4 and off["status"] == "running"
    cli(["sane.cli.main", "run", "interrupt", off["run_id"]], cli_env)


# -- the decision itself, on snapshots -------------------------------------------------


def _snap(
    syscall: str,
    fds: dict[int, str],
    epoll: dict[int, list[int]] | None = None,
    machine: str = "x86_64",
) -> prompts.Snapshot:
    return prompts.Snapshot(
        machine, "/dev/pts/3", [prompts.Proc(42, "prog", [syscall], fds, epoll or {})]
    )


TTY = {0: "/dev/pts/3", 1: "/dev/pts/3", 2: "/dev/pts/3"}


@pytest.mark.parametrize(
    "syscall,fds,epoll,waiting",
    [
        ("0 0x0 0x7ffd 0x1 0x0 0x0 0x0 0x7ffd 0x7f", TTY, None, True),  # read(0)
        ("0 0x3 0x7ffd 0x1 0x0 0x0 0x0 0x7ffd 0x7f", {**TTY, 3: "/dev/tty"}, None, True),  # less
        ("0 0x3 0x7ffd 0x1 0x0 0x0 0x0 0x7ffd 0x7f", {**TTY, 3: "pipe:[77]"}, None, False),
        ("0 0x0 0x7ffd 0x1 0x0 0x0 0x0 0x7ffd 0x7f", {0: "/dev/pts/9"}, None, False),  # other tty
        ("270 0x1 0x7ffd 0x0 0x0 0x0 0x0 0x7ffd 0x7f", TTY, None, True),  # readline's pselect6
        ("270 0x5 0x7ffd 0x0 0x0 0x0 0x0 0x7ffd 0x7f", {**TTY, 4: "socket:[9]"}, None, False),
        ("230 0x0 0x0 0x7ffd 0x7ffd 0x0 0x0 0x7ffd 0x7f", TTY, None, False),  # nanosleep
        ("202 0x7f 0x80 0x0 0x0 0x0 0x0 0x7ffd 0x7f", TTY, None, False),  # futex
        ("running", TTY, None, False),
        ("7 0x7ffd 0x2 0xffffffff 0x0 0x0 0x0 0x7ffd 0x7f", {**TTY, 3: "socket:[1]"}, None, False),
        ("7 0x7ffd 0x1 0xffffffff 0x0 0x0 0x0 0x7ffd 0x7f", TTY, None, True),  # all fds ttys
        # pollfd array unknown: fds always ready (sane's RUN_FD on /dev/null) cannot be it
        ("7 0x7ffd 0x1 0xffffffff 0x0 0x0 0x0 0x7ffd 0x7f", {**TTY, 7: "/dev/null"}, None, True),
        (
            "7 0x7ffd 0x2 0xffffffff 0x0 0x0 0x0 0x7ffd 0x7f",
            {**TTY, 7: "/dev/null", 4: "socket:[1]"},
            None,
            False,
        ),
        (
            "23 0x8 0x7ffd 0x0 0x0 0x0 0x0 0x7ffd 0x7f",
            {**TTY, 7: "/dev/null"},
            None,
            True,
        ),  # select
        (
            "232 0x4 0x7ffd 0x8 0xffffffff 0x0 0x0 0x7ffd 0x7f",
            {**TTY, 4: "anon_inode:[eventpoll]"},
            {4: [0]},
            True,
        ),
        (
            "232 0x4 0x7ffd 0x8 0xffffffff 0x0 0x0 0x7ffd 0x7f",
            {**TTY, 4: "anon_inode:[eventpoll]", 5: "socket:[3]"},
            {4: [5]},
            False,
        ),
    ],
)
def test_waiting_decision(
    syscall: str, fds: dict[int, str], epoll: dict[int, list[int]] | None, waiting: bool
) -> None:
    assert (prompts.waiting_process(_snap(syscall, fds, epoll)) is not None) is waiting


def test_poll_reads_the_pollfd_array() -> None:
    fds = {**TTY, 3: "socket:[1]"}
    syscall = "7 0x1000 0x2 0xffffffff 0x0 0x0 0x0 0x7ffd 0x7f"
    pollfd = (0).to_bytes(4, "little") + (1).to_bytes(2, "little") + b"\0\0"
    socket_in = (3).to_bytes(4, "little") + (1).to_bytes(2, "little") + b"\0\0"
    socket_out = (3).to_bytes(4, "little") + (4).to_bytes(2, "little") + b"\0\0"
    assert (
        prompts.waiting_process(_snap(syscall, fds), lambda pid, addr, size: pollfd + socket_out)
        is not None
    )
    assert (
        prompts.waiting_process(_snap(syscall, fds), lambda pid, addr, size: pollfd + socket_in)
        is None
    )


def test_unreadable_process_state_is_not_a_no() -> None:
    # Without permission for /proc/PID/syscall the kernel has not answered: the caller
    # falls back to the prompt text instead of concluding "not waiting".
    assert _snap("0 0x0 0x1 0x1 0 0 0 0 0", TTY).readable
    unreadable = prompts.Snapshot("x86_64", "/dev/pts/3", [prompts.Proc(7, "sudo", [], {}, {})])
    assert not unreadable.readable and prompts.waiting_process(unreadable) is None


def test_unknown_machine_decides_nothing() -> None:
    assert prompts.waiting_process(_snap("0 0x0 0x1 0x1 0 0 0 0 0", TTY, machine="mips")) is None


def test_in_runner_needs_the_runners_fd_and_its_caught_signal() -> None:
    # fd 7 on /dev/null survives an exec; the runner's SIGURG handler does not.
    text = (
        "A x86_64\nG 34816\nP 6 bash\nC 0000000000400000\nF 7 /dev/null\n"
        "P 8 bash\nC 0000000000010002\nF 7 /dev/null\nP 9 bash\nF 7 /dev/null\n"
    )
    [snap] = prompts.parse_remote(text)
    assert [prompts.in_runner(p) for p in snap.procs] == [True, False, True]


def test_parse_remote_snapshot() -> None:
    text = (
        "A aarch64\nG 34816\nP 6 bash\nS 63 0x0 0xffff 0x1 0x0 0x0 0x0 0xff 0xff\n"
        "F 0 /dev/pts/0\nF 1 /dev/pts/0\nP 9 my prog\nS 101 0x0 0 0 0 0 0 0 0\n"
        "F 3 anon_inode:[eventpoll]\nE 3 0\n"
    )
    [snap] = prompts.parse_remote(text)
    assert (snap.machine, snap.tty) == ("aarch64", "/dev/pts/0")
    assert [(p.pid, p.comm) for p in snap.procs] == [(6, "bash"), (9, "my prog")]
    assert snap.procs[1].epoll == {3: [0]}
    found = prompts.waiting_process(snap)
    assert found is not None and found.comm == "bash"
    assert prompts.parse_remote("garbage\n") == []


def test_parse_remote_busybox_ash_read() -> None:
    """busybox ash's `read` polls the terminal (its pollfd array is out of reach from
    the remote script) with sane's RUN_FD (/dev/null) and its job-control /dev/tty open:
    recorded from a busybox container over Dropbear (tests/test_containers.py)."""
    text = (
        "A x86_64\nG 34816\nP 13 ash\n"
        "S 7 0x7fff448690d8 0x1 0xffffffff 0xb4cad6e5733aecf3 0x0 0x0 0x7fff448690a8 "
        "0x7f422beaa230\n"
        "F 0 /dev/pts/0\nF 1 /dev/pts/0\nF 10 /dev/tty\nF 2 /dev/pts/0\nF 7 /dev/null\n"
    )
    [snap] = prompts.parse_remote(text)
    found = prompts.waiting_process(snap)
    assert found is not None and found.comm == "ash"


def test_parse_remote_fish_read_with_its_working_directory_open() -> None:
    """fish's `read -P` polls the terminal and two eventfds, its working directory open
    at fd 3 (recorded over ssh, tests/test_shells.py): a directory is always ready, so
    the poll waits on the terminal. Without the R line that fd could be anything."""
    text = (
        "A x86_64\nG 34843\nP 7 fish\nC 0000000108116013\n"
        "S 7 0x55ca566a9a30 0x3 0xffffffff 0xb43678c739261760 0x0 0x55ca566e3d40 "
        "0x7ffccfb51980 0x7fdb5ba3a26f\n"
        "F 0 /dev/pts/27\nF 1 /dev/pts/27\nF 2 /dev/pts/27\nF 3 /root\nR 3\n"
        "F 4 /tmp/fish.root/fish_universal_variables.notifier\n"
        "F 5 anon_inode:[eventfd]\nF 6 anon_inode:[eventfd]\nF 7 /dev/zero\n"
    )
    [snap] = prompts.parse_remote(text)
    found = prompts.waiting_process(snap)
    assert found is not None and found.comm == "fish" and found.ready == {3}
    [unknown] = prompts.parse_remote(text.replace("R 3\n", ""))
    assert prompts.waiting_process(unknown) is None


def test_parse_remote_relayed_terminals() -> None:
    text = (
        "A x86_64\nG 34817\nP 40 sudo\nS 7 0x7ff 0x3 0xffffffff 0 0 0 0 0\n"
        "F 0 /dev/pts/1\nF 5 /dev/ptmx\nF 6 socket:[4]\n"
        "G 34818\nP 43 python3\nS 270 0x1 0x7ff 0x0 0x0 0x0 0x0 0x7ff 0x7f\n"
        "F 0 /dev/pts/2\nF 1 /dev/pts/2\n"
    )
    outer, inner = prompts.parse_remote(text)
    assert (outer.tty, inner.tty) == ("/dev/pts/1", "/dev/pts/2")
    assert prompts.waiting_process(outer) is None  # sudo polls its pty and a socket
    found = prompts.waiting_process(inner)
    assert found is not None and found.comm == "python3"


@pytest.mark.parametrize(
    "prompt,matches",
    [
        ("[sudo] password for ada: ", True),
        ("Enter passphrase for key '/k': ", True),
        ("Are you sure you want to continue connecting (yes/no/[fingerprint])? ", True),
        ("Proceed? [Y/n] ", True),
        (">>> ", True),
        (":", True),
        ("(END)", True),
        ("Name? ", True),
        ("", False),
        ("compiling 3/10", False),
        ("done.", False),
    ],
)
def test_prompt_patterns(prompt: str, matches: bool) -> None:
    assert prompts.matches_prompt_pattern(prompt) is matches


def test_prompt_answered_over_mcp(cli_env: dict[str, str], tmux_server: TmuxTestServer) -> None:
    from .test_mcp import Call, with_session

    pane = tmux_server.new_pane("bash")

    async def body(session: Any, call: Call) -> None:
        asked = await call(
            "run_command", command="read -r -p 'Continue? [y/N] ' a; echo $a", pane=pane, timeout=10
        )
        assert (asked["status"], asked["prompt"], asked["waiting_reason"]) == (
            "waiting_input",
            "Continue? [y/N] ",
            "tty_read",
        )
        again = await call("run_wait", run_id=asked["run_id"], timeout=10)
        assert (again["status"], again["output"]) == ("waiting_input", "")
        done = await call("run_input", run_id=asked["run_id"], text="y")
        assert (done["status"], done["exit_code"], done["output"]) == ("completed", 0, "y\ny\n")
        late = await call("run_input", run_id=asked["run_id"], text="y")
        assert late["error"]["code"] == "run_finished"
        off = await call("run_command", command="read -r a", pane=pane, timeout=1, quiet_period=0)
        assert off["status"] == "running"
        key = await call("run_input", run_id=off["run_id"], text="z", no_enter=True, timeout=1)
        assert (key["status"], key["output"]) == ("waiting_input", "z")

    with_session(cli_env, body)
