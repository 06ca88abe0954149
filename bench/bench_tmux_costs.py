"""What one tmux command costs the tmux server, by how many panes and windows it holds.

Reproduce (repository root)::

    .venv/bin/python bench/bench_tmux_costs.py --panes 10,200,1000 --per-window 1,10

Why: a cold fleet connect's tmux CPU per server grows with the fleet (5-7 ms at 200
servers, 16-17 ms at 1,000, docs/performance.md "Scale"), and that growth is what a
connect's time grows with on one core. This script says which commands grow, and with
what: for each size, a private tmux server (``-f /dev/null``) holding that many idle
panes (``sleep``), one window per pane or several stacked in a window as
``sane.fleet.layout`` groups them, and one control client attached; then each command
kind is sent ``--repeat`` times through that client, ``--per-line`` to a line (twenty
unless told), each line answered before the next, and the tmux server's CPU (user +
system, from ``/proc``) divided by the count is printed. CPU, not wall time, so the
load of a shared machine moves it little; clock ticks of 10 ms are why the repeats are
many. ``--per-line 1,20`` shows what a line written alone costs
against a line among many: each line read alone is a turn of tmux's event loop, which
polls every pane's descriptor and passes over every window (``--per-line 1`` at 1,000
panes, ten to a window: ~1-1.5 ms a line, ~0.1-0.2 ms a command among twenty).

Kinds: ``set`` (``set-option -p`` of a user option, as sane marks panes), ``unset``,
``display`` (a one-pane ``display-message``: the cost of a command line by itself),
``listing`` (the liveness listing, ``list-panes -a`` of two fields), ``dead`` (the same
filtered to dead panes: what tmux's own filter saves, though it cannot show a pane that
is gone).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from tree_child import cpu_ms  # this directory: the script's own path entry

KINDS: dict[str, Callable[[str, int], str]] = {
    "set": lambda pane, i: f"set-option -p -t {pane} @bench_{i % 7} v{i}",
    "unset": lambda pane, i: f"set-option -p -u -t {pane} @bench_{i % 7}",
    "display": lambda pane, _i: f"display-message -p -t {pane} '#{{pane_id}}'",
    "listing": lambda _pane, _i: "list-panes -a -F '#{pane_id} #{pane_dead}'",
    "dead": lambda _pane, _i: "list-panes -a -f '#{pane_dead}' -F '#{pane_id}'",
}


class Server:
    """A private tmux server and one control client attached to its session."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self._tmux("new-session", "-d", "-s", "bench", "-x", "200", "-y", "50", "sleep 1000000")
        self.pid = int(self._tmux("display-message", "-p", "#{pid}").strip())
        self.path = self._tmux("display-message", "-p", "#{socket_path}").strip()
        self.client = subprocess.Popen(
            ["tmux", "-L", socket, "-C", "attach", "-t", "bench"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def _tmux(self, *args: str) -> str:
        argv = ["tmux", "-L", self.socket, "-f", "/dev/null", *args]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def send(self, lines: Sequence[str]) -> None:
        """Write ``lines``, then read until each has its %end or %error."""
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write("".join(f"{line}\n" for line in lines))
        self.client.stdin.flush()
        done = 0
        while done < len(lines):
            got = self.client.stdout.readline()
            if not got:
                raise SystemExit("the control client ended")
            done += got.startswith(("%end ", "%error "))

    def fill(self, count: int, per_window: int) -> list[str]:
        """``count`` idle panes in all, ``per_window`` stacked in each window (each
        pane 200x50, the window sized to fit, as sane's group windows are)."""
        lines: list[str] = []
        for i in range(1, count):  # the session's first pane is one of them
            if i % per_window == 0:
                lines.append(f"new-window -d -n w{i} 'sleep 1000000'")
                lines.append(f"resize-window -t :=w{i} -x 200 -y {per_window * 51}")
            else:
                first = i - i % per_window
                window = f":=w{first}" if first else ":^"
                if first == 0 and i == 1:
                    lines.append(f"resize-window -t :^ -x 200 -y {per_window * 51}")
                lines.append(f"split-window -d -t {window} 'sleep 1000000'")
                lines.append(f"select-layout -t {window} even-vertical")
            if len(lines) >= 60:
                self.send(lines)
                lines = []
        if lines:
            self.send(lines)
        return self._tmux("list-panes", "-a", "-F", "#{pane_id}").split()

    def cost_us(self, kind: str, panes: list[str], repeat: int, per_line: int) -> float:
        """tmux CPU per command of ``kind``, in microseconds, sent ``per_line`` to a
        line (each line written, and its answers read, before the next)."""
        make = KINDS[kind]
        before = cpu_ms(self.pid)
        for start in range(0, repeat, per_line):
            count = min(per_line, repeat - start)
            self.send([make(panes[(start + k) % len(panes)], start + k) for k in range(count)])
        return (cpu_ms(self.pid) - before) * 1000 / repeat

    def close(self) -> None:
        if self.client.stdin is not None:
            self.client.stdin.close()
        self.client.wait(timeout=30)
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False)
        with contextlib.suppress(OSError):  # tmux 3.3a leaves its socket file behind
            os.unlink(self.path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--panes", default="10,200,1000")
    parser.add_argument("--per-window", default="1,10")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--per-line", default="20", help="commands to a line, e.g. 1,20")
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    print(f"bench_tmux_costs: load {os.getloadavg()[0]:.1f}; tmux CPU per command, us")
    print(
        f"{'panes':>6} {'per window':>10} {'windows':>7} {'per line':>8} "
        + " ".join(f"{k:>9}" for k in kinds)
    )
    for count in (int(n) for n in args.panes.split(",")):
        for per_window in (int(n) for n in args.per_window.split(",")):
            server = Server(f"sane-bench-costs-{os.getpid()}-{count}-{per_window}")
            try:
                panes = server.fill(count, per_window)
                windows = -(-count // per_window)
                for per_line in (int(n) for n in args.per_line.split(",")):
                    costs = [server.cost_us(k, panes, args.repeat, per_line) for k in kinds]
                    print(
                        f"{len(panes):>6} {per_window:>10} {windows:>7} {per_line:>8} "
                        + " ".join(f"{c:>9.1f}" for c in costs),
                        flush=True,
                    )
            finally:
                server.close()
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
