"""What a sane run costs fish, in instructions: a figure the machine's load cannot move.

Reproduce (repository root; tmux, fish and valgrind installed)::

    .venv/bin/python bench/bench_fish_instructions.py            # N = 10 a variant
    .venv/bin/python bench/bench_fish_instructions.py --runs 20

Wall-clock ratios of fish against bash (``bench_run.py`` section a) swing by 2x at the
load this machine often carries; instructions do not. Each variant starts a fish
(``fish --no-config``, prompt ``$ ``, as in the tests) under ``valgrind
--tool=callgrind`` in a private tmux server, installs sane's runner by typing its
takeover lines, types 3 warm-up runs, zeroes the counters, types N runs and reads the
instructions fish executed (all its threads) per run. Keys are sent with ``tmux
send-keys`` exactly as a run sends them (hold key, ``C-e C-u``, the line, Enter); the
next is typed once fish has used no CPU for 0.6 s (fish under valgrind is ~50x slow).

Variants, each against the same takeover:

* ``sane true``: a sane run of ``true`` (``runner.run_input``);
* ``raw true``: `` true`` typed by hand (what any command line costs fish);
* the same two with ``function fish_title; end`` typed first: how much of each is
  fish's window title, which fish computes before running a line and before each
  prompt (the takeover wraps the pane's ``fish_title``, ``sane.protocol.fish.title_line``:
  sane's lines get none, the prompt after one reuses fish's own default title while
  ``$PWD`` and the rest it depends on stay the same; a person's lines pay for theirs).
"""

from __future__ import annotations

import argparse
import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from sane.protocol import fish
from sane.protocol.editor import HOLD_KEY
from sane.protocol.runner import SHELL_FISH, run_input

QUIET_FOR = 6  # polls of 0.1 s without fish using CPU
START_DEADLINE = 180.0
NO_TITLE = " function fish_title; end"


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _settle(pid: int, deadline: float = 120.0) -> None:
    """Return once fish has used no CPU for QUIET_FOR polls (its last keys are done)."""
    end = time.monotonic() + deadline
    last, same = _cpu_ticks(pid), 0
    while same < QUIET_FOR:
        if time.monotonic() > end:
            raise RuntimeError("fish never went idle")
        time.sleep(0.1)
        now = _cpu_ticks(pid)
        same = same + 1 if now == last else 0
        last = now


class FishUnderCallgrind:
    """A fish in a private tmux server, counted by callgrind."""

    def __init__(self, tmp: str) -> None:
        self.socket = f"sane-fishinstr-{os.getpid()}-{secrets.token_hex(4)}"
        self.out = os.path.join(tmp, f"callgrind.{self.socket}")
        shell = (
            "env -u PROMPT_COMMAND valgrind --tool=callgrind"
            f" --callgrind-out-file={self.out} fish --no-config"
            " -C \"function fish_prompt; printf '%s' '\\$ '; end\""
        )
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", shell)
        self.pid = int(self.tmux("display-message", "-p", "#{pane_pid}").strip())
        end = time.monotonic() + START_DEADLINE
        while "$" not in self.tmux("capture-pane", "-p"):
            if time.monotonic() > end:
                raise RuntimeError("fish under valgrind never drew its prompt")
            time.sleep(0.2)
        _settle(self.pid)

    def tmux(self, *args: str) -> str:
        argv = ["tmux", "-L", self.socket, "-f", "/dev/null", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    def type_line(self, text: str, hold: bool = False) -> None:
        keys: list[str] = []
        if hold:
            keys += ["send-keys", "-H", *(f"{b:02x}" for b in HOLD_KEY.encode()), ";"]
            keys += ["send-keys", "C-e", "C-u", ";"]
        self.tmux(*keys, "send-keys", "-l", text, ";", "send-keys", "Enter")
        _settle(self.pid)

    def callgrind(self, action: str) -> None:
        subprocess.run(
            ["callgrind_control", action, str(self.pid)], check=True, capture_output=True
        )

    def instructions(self) -> int:
        total = 0
        for path in glob.glob(self.out + "*"):
            with open(path) as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        total += int(line.split()[1])
                        break
        return total

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        for path in glob.glob(self.out + "*"):
            os.unlink(path)


def measure(runs: int, no_title: bool, sane: bool) -> float:
    """Instructions fish executes per run (millions)."""
    tmp = tempfile.mkdtemp(prefix="sane-fishinstr-")
    shell = FishUnderCallgrind(tmp)
    try:
        if no_title:
            shell.type_line(NO_TITLE)
        for line in fish.takeover_lines(secrets.token_hex(8), secrets.token_hex(8)):
            shell.type_line(line)

        def one() -> None:
            if sane:
                typed = run_input(secrets.token_hex(8), "true", kind=SHELL_FISH)
                shell.type_line(typed.text, hold=True)
            else:
                shell.type_line(" true")

        for _ in range(3):
            one()
        shell.callgrind("-z")
        _settle(shell.pid)
        for _ in range(runs):
            one()
        shell.callgrind("-d")
        _settle(shell.pid)
        return shell.instructions() / runs / 1e6
    finally:
        shell.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10, help="counted runs a variant (10)")
    args = parser.parse_args()
    missing = [tool for tool in ("tmux", "fish", "valgrind") if shutil.which(tool) is None]
    if missing:
        print(f"needs {', '.join(missing)}", file=sys.stderr)
        return 2
    variants: list[tuple[str, Callable[[], float]]] = [
        ("sane true", lambda: measure(args.runs, False, True)),
        ("raw true", lambda: measure(args.runs, False, False)),
        ("sane true, empty fish_title", lambda: measure(args.runs, True, True)),
        ("raw true, empty fish_title", lambda: measure(args.runs, True, False)),
    ]
    print(f"fish instructions per run (callgrind, N={args.runs})", flush=True)
    for name, run in variants:
        print(f"{name}: {run():.2f} M", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
