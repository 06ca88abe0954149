"""The control-mode client itself, on a real tmux server: its child process and its
reader thread under concurrent use."""

from __future__ import annotations

import os
import sys
import threading

from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux.control import ControlClient


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


def test_the_client_process_is_reaped_and_its_pipes_closed(
        tmux_server: TmuxTestServer) -> None:
    client = ControlClient(tmux_server.server, "base")
    pid = client._proc.pid
    assert client.command("display-message -p ok") == ["ok"]
    client.close()
    assert client._proc.returncode == 0
    assert not os.path.exists(f"/proc/{pid}")  # reaped: no zombie left
    assert client._proc.stdout.closed and client._proc.stderr.closed


def test_the_client_process_gets_no_descriptor_a_caller_passed_to_sane(
        tmux_server: TmuxTestServer) -> None:
    """As Popen(close_fds=True): an inheritable pipe end held by the tmux client
    would keep that pipe's reader from ever seeing EOF."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        client = ControlClient(tmux_server.server, "base")
        pipe = os.readlink(f"/proc/self/fd/{write_end}")
        held = {os.readlink(f"/proc/{client._proc.pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{client._proc.pid}/fd")}
        assert pipe not in held
        client.close()
    finally:
        os.close(read_end)
        os.close(write_end)
