"""Benchmark sane-create-file: 10 MB through a local pane and an ssh pane vs scp.

Reproduce (repository root, root user, tmux + openssh-server installed)::

    .venv/bin/python bench/bench_create_file.py

One run, on this machine only: a private tmux server, a throwaway sshd on
127.0.0.1 (shared with bench_run.py), a 10,000,000-byte random file. For each way
of sending it, the median of 3 transfers, each verified byte for byte on arrival:

* ``create_file`` into a local dash pane (warm: runner installed);
* ``create_file`` through a pane running ``ssh`` to the local sshd (warm);
* ``scp -O`` (the classic protocol: the throwaway sshd runs no sftp subsystem) of
  the same file to the same sshd (a fresh connection each time, as a person or
  script would run it), and ``scp`` over an already open ControlMaster
  (the fairest floor for an already connected pane).

* ``create_file`` to a registered server (``--server``): its pane is the ssh
  ControlMaster and the bytes go over it; the pane's shell checks and installs them.

Goal: create-file through the ssh pane within 2x of scp.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_run import (
    median_ms,
    ssh_client_options,
    ssh_pane_command,
    ssh_skip_reason,
    throwaway_sshd,
    wait_remote_shell,
)

from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.testing.pytest_plugin import TmuxTestServer

SIZE = 10_000_000
REPEAT = 3


def _check(path: Path, digest: str) -> None:
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != digest:
        raise SystemExit(f"{path}: checksum {actual} != {digest}")


def _sane(ctx: Context, pane: str, data: bytes, target: Path, digest: str) -> float:
    samples = []
    for _ in range(REPEAT):
        target.unlink(missing_ok=True)
        started = time.perf_counter()
        create_file(ctx, str(target), data, pane=pane)
        samples.append(time.perf_counter() - started)
        _check(target, digest)
    return median_ms(samples)


def _fleet(ctx: Context, port: int, key: Path, data: bytes, work: Path, digest: str) -> float:
    """The product path for a registered server: its pane is the ssh ControlMaster and
    create-file sends the bytes over it (``--server`` on the CLI)."""
    from sane.fleet.panes import file_channel, open_server_pane
    from sane.fleet.registry import Registry, Server

    known = work / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {key.parent.joinpath('host_ed25519.pub').read_text()}")
    Registry(ctx.home).add(
        Server(
            name="bench",
            host="127.0.0.1",
            port=port,
            user="root",
            identity_file=str(key),
            ssh_options={"UserKnownHostsFile": str(known)},
        ),
        replace=True,
    )
    pane = open_server_pane(ctx, Registry(ctx.home).get("bench")).pane_id
    channel = file_channel(ctx, "bench")
    target = work / "fleet.bin"
    samples = []
    for _ in range(REPEAT):
        target.unlink(missing_ok=True)
        started = time.perf_counter()
        create_file(ctx, str(target), data, pane=pane, side_channel=channel)
        samples.append(time.perf_counter() - started)
        _check(target, digest)
    return median_ms(samples)


def _scp(argv: list[str], target: Path, digest: str) -> float:
    samples = []
    for _ in range(REPEAT):
        target.unlink(missing_ok=True)
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, timeout=120)
        samples.append(time.perf_counter() - started)
        _check(target, digest)
    return median_ms(samples)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="sane-bench-cf-"))
    work.chmod(0o755)
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    source = work / "source.bin"
    source.write_bytes(data)
    srv = TmuxTestServer(f"sane-bench-cf-{os.getpid()}")
    srv.kill()
    srv.start()
    rows: list[tuple[str, float]] = []
    try:
        with Context(srv.server, home=work / "home") as ctx:
            local = srv.new_pane("dash")
            create_file(ctx, str(work / "warm"), b"warm", pane=local)
            rows.append(
                (
                    "create-file, local dash pane",
                    _sane(ctx, local, data, work / "local.bin", digest),
                )
            )
            reason = ssh_skip_reason()
            if reason is not None:
                print(f"ssh part skipped: {reason}")
            else:
                with throwaway_sshd() as (port, key):
                    pane = srv.new_pane(ssh_pane_command(port, key))
                    wait_remote_shell(ctx, pane)
                    rows.append(
                        (
                            "create-file, ssh pane (warm)",
                            _sane(ctx, pane, data, work / "ssh.bin", digest),
                        )
                    )
                    rows.append(
                        (
                            "create-file, fleet pane + ControlMaster",
                            _fleet(ctx, port, key, data, work, digest),
                        )
                    )
                    common = [*ssh_client_options(key), "-P", str(port)]
                    dest = f"root@127.0.0.1:{work / 'scp.bin'}"
                    rows.append(
                        (
                            "scp, new connection",
                            _scp(
                                ["scp", "-q", "-O", *common, str(source), dest],
                                work / "scp.bin",
                                digest,
                            ),
                        )
                    )
                    control = work / "cm.sock"
                    master = subprocess.Popen(
                        [
                            "ssh",
                            "-N",
                            "-o",
                            "ControlMaster=yes",
                            "-o",
                            f"ControlPath={control}",
                            *ssh_client_options(key),
                            "-p",
                            str(port),
                            "root@127.0.0.1",
                        ],
                        stdin=subprocess.DEVNULL,
                    )
                    try:
                        deadline = time.monotonic() + 10
                        while not control.exists() and time.monotonic() < deadline:
                            time.sleep(0.01)  # poll interval of a deadline-bounded wait
                        rows.append(
                            (
                                "scp, over an open ControlMaster",
                                _scp(
                                    [
                                        "scp",
                                        "-q",
                                        "-O",
                                        "-o",
                                        f"ControlPath={control}",
                                        *common,
                                        str(source),
                                        dest,
                                    ],
                                    work / "scp.bin",
                                    digest,
                                ),
                            )
                        )
                    finally:
                        master.terminate()
                        master.wait(timeout=10)
    finally:
        srv.kill()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    by_name = dict(rows)
    print(f"10 MB ({SIZE} bytes) transfers, median of {REPEAT}, each verified by sha256")
    for name, ms in rows:
        print(f"  {name:38s} {ms:8.1f} ms  {SIZE / ms / 1000:6.1f} MB/s")
    ssh_ms = by_name.get("create-file, fleet pane + ControlMaster")
    scp_ms = by_name.get("scp, new connection")
    scp_cm = by_name.get("scp, over an open ControlMaster")
    if ssh_ms and scp_ms and scp_cm:
        print(
            f"ratio create-file(ssh) / scp: {ssh_ms / scp_ms:.2f}x (goal <= 2x: "
            f"{'met' if ssh_ms <= 2 * scp_ms else 'NOT met'}); "
            f"vs scp over ControlMaster: {ssh_ms / scp_cm:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
