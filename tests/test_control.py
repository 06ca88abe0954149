"""The control-mode client itself, on a real tmux server: its child process and its
reader thread under concurrent use."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux.control import ControlClient


@pytest.mark.slow
def test_watching_from_many_threads_while_replies_arrive(tmux_server: TmuxTestServer) -> None:
    """The reader records every watched stream's position at each reply while other
    threads watch and unwatch panes (a fleet run does both at once for 20 servers)."""
    pane = tmux_server.new_pane("dash")
    client = ControlClient(tmux_server.server, "base")
    stop = threading.Event()

    def churn(worker: int) -> None:
        held = []
        n = 0
        while not stop.is_set():
            n += 1
            held.append((f"%{worker}-{n}", client.watch(f"%{worker}-{n}")))  # a new key
            if len(held) > 200:
                client.unwatch(*held.pop(0))

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: mid-iteration, if it iterates
    for thread in threads:
        thread.start()
    try:
        for i in range(400):
            assert client.command(f"display-message -p -t {pane} 'n{i}'") == [f"n{i}"]
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        for thread in threads:
            thread.join()
    assert client.alive
    client.close()


def test_the_client_process_is_reaped_and_its_pipes_closed(tmux_server: TmuxTestServer) -> None:
    client = ControlClient(tmux_server.server, "base")
    pid = client._proc.pid
    assert client.command("display-message -p ok") == ["ok"]
    client.close()
    assert client._proc.returncode == 0
    assert not os.path.exists(f"/proc/{pid}")  # reaped: no zombie left
    assert client._proc.stdout.closed and client._proc.stderr.closed


def test_the_client_process_gets_no_descriptor_a_caller_passed_to_sane(
    tmux_server: TmuxTestServer,
) -> None:
    """As Popen(close_fds=True): an inheritable pipe end held by the tmux client
    would keep that pipe's reader from ever seeing EOF."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        client = ControlClient(tmux_server.server, "base")
        pipe = os.readlink(f"/proc/self/fd/{write_end}")
        held = set()
        for fd in os.listdir(f"/proc/{client._proc.pid}/fd"):
            with contextlib.suppress(FileNotFoundError):  # one tmux closed meanwhile
                held.add(os.readlink(f"/proc/{client._proc.pid}/fd/{fd}"))
        assert pipe not in held
        client.close()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_concurrent_first_calls_share_one_attach(
    tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five threads of a fleet connect each ask tmux something first. Each used to
    attach its own control client and all but one detached at once; tmux 3.3a
    segfaulted now and then on that (callers saw "server exited unexpectedly")."""
    from sane.ops.context import Context
    from sane.tmux import control

    started: list[str] = []
    real_init = control.ControlClient.__init__

    def counting_init(self: control.ControlClient, *args: Any, **kwargs: Any) -> None:
        started.append(args[1] if len(args) > 1 else kwargs["session"])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(control.ControlClient, "__init__", counting_init)
    server_pid = tmux_server.server.run("display-message", "-p", "#{pid}").strip()
    for _ in range(20):
        started.clear()
        with Context(tmux_server.server) as ctx:
            barrier = threading.Barrier(5, timeout=10)
            answers: list[list[str]] = []

            def first_call(
                ctx: Context = ctx,
                barrier: threading.Barrier = barrier,
                answers: list[list[str]] = answers,
            ) -> None:
                barrier.wait()
                ctx.attach_first("=base")  # as server_panes and pane_state do
                answers.append(ctx.tmux(["list-panes", "-s", "-t", "=base", "-F", "#{pane_id}"]))

            threads = [threading.Thread(target=first_call) for _ in range(5)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(answers) == 5 and all(answers)
            assert started == ["=base"]  # one client attached, shared by all five
    assert tmux_server.server.run("display-message", "-p", "#{pid}").strip() == server_pid


def test_clients_attaching_while_others_detach_do_not_crash_tmux(
    tmux_server: TmuxTestServer,
) -> None:
    """tmux 3.3a segfaults when a control client attaches while another detaches;
    four threads doing both in a loop crashed it within a second before sane took
    attach and detach one at a time (across processes too: it is an flock)."""
    server_pid = tmux_server.server.run("display-message", "-p", "#{pid}").strip()
    failures: list[str] = []

    def attach_and_detach() -> None:
        for i in range(40):
            try:
                client = ControlClient(tmux_server.server, "base")
                assert client.command(f"display-message -p 'n{i}'") == [f"n{i}"]
                client.close()
            except Exception as exc:  # collected for the assertion below
                failures.append(repr(exc))

    threads = [threading.Thread(target=attach_and_detach) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert tmux_server.server.run("display-message", "-p", "#{pid}").strip() == server_pid


def test_watching_costs_the_same_however_many_panes_are_watched(
    tmux_server: TmuxTestServer,
) -> None:
    """A fleet run watches every server's pane at once: watching and unwatching one
    more must not cost in proportion to how many are watched (the table was copied
    whole at each, O(N^2) memory traffic per fleet run of N servers). Measured by the
    bytes one watch and unwatch allocate, with 50 and with 5,000 streams watched."""
    import tracemalloc

    client = ControlClient(tmux_server.server, "base")
    try:

        def allocated(watched: int) -> int:
            held = [client.watch(f"%{100_000 + i}") for i in range(watched)]
            tracemalloc.start()
            try:
                stream = client.watch("%99999")
                client.unwatch("%99999", stream)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            for i, held_stream in enumerate(held):
                client.unwatch(f"%{100_000 + i}", held_stream)
            return peak

        few, many = allocated(50), allocated(5000)
        assert many < few + 4096, (few, many)
    finally:
        client.close()


def test_every_control_character_reaches_tmux_as_itself(
    tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """``quote`` writes a control character (other than a newline) as a double-quoted
    octal escape, which tmux's parser turns back into it: the keys a run types go as
    text in one ``send-keys -l`` (ESC, ^E, ^U, ``\\r``). Every C0 character and DEL,
    between quotes of both kinds and tmux's own specials, round-trips exactly through
    a real tmux (set into a buffer, read back)."""
    from sane.tmux.command import quote

    text = "".join(chr(c) for c in [*range(1, 32), 127]) + "'\"$HOME ~ #{pane_id} ; \\ end"
    client = ControlClient(tmux_server.server, "base")
    try:
        client.command(f"set-buffer -b sane-quote {quote(text)}")
        client.command(f"save-buffer -b sane-quote {quote(str(tmp_path / 'saved'))}")
    finally:
        client.close()
    assert (tmp_path / "saved").read_bytes() == text.encode()
