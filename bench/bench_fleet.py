"""Benchmark fleet runs on a 20-server loopback fleet against other tools, in one run.

Reproduce (repository root, root user, openssh-server installed; the peer tools are
measured when installed: ``pip install parallel-ssh fabric ansible-core`` and
``apt-get install pssh``)::

    .venv/bin/python bench/bench_fleet.py

Everything runs on this machine: 20 real sshd servers on 127.0.0.1 (the test fleet of
``sane.testing.fleet``), a private tmux server, temporary files; all removed at the end.

Measured, wall clock, median of several runs where cheap:

* sane, library: ``fleet_run(ctx, servers, "true", max_parallel=20)`` with warm panes;
* sane, CLI one-shot: ``sane fleet run --all --max-parallel 20 true`` as a process;
* sane, ``sleep 1`` on 20 servers with ``--max-parallel 20`` (goal <= 1.10 s);
* plain ``ssh host true`` x20 in parallel, with and without an open ControlMaster;
* parallel-ssh (``ParallelSSHClient.run_command`` + ``join``), pssh (``parallel-ssh``
  command), Fabric (``ThreadingGroup.run``), Ansible ad-hoc ``-m shell`` / ``-m raw``.
Goals (from the issue): CLI <= 0.15 s, library <= 30 ms.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.testing.fleet import Fleet, register
from sane.testing.pytest_plugin import TmuxTestServer

COUNT = 20
ROOT = Path(__file__).resolve().parent.parent


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def ssh_opts(fleet: Fleet) -> list[str]:
    return [
        "-i",
        str(fleet.client_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={fleet.known_hosts}",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "KexAlgorithms=curve25519-sha256",
    ]


def parallel_ssh(fleet: Fleet, extra: list[str]) -> None:
    procs = [
        subprocess.Popen(
            ["ssh", *ssh_opts(fleet), *extra, "-p", str(s.port), f"root@{s.host}", "true"],
            stdin=subprocess.DEVNULL,
        )
        for s in fleet.servers
    ]
    for proc in procs:
        if proc.wait(timeout=60) != 0:
            raise SystemExit("ssh failed")


def main() -> int:
    rows: list[tuple[str, str]] = []
    work = Path(tempfile.mkdtemp(prefix="sane-bench-fleet-"))
    srv = TmuxTestServer(f"sane-bench-fleet-{os.getpid()}")
    srv.kill()
    srv.start()
    masters: list[subprocess.Popen[bytes]] = []
    try:
        with Fleet(COUNT) as fleet, Context(srv.server, home=work / "home") as ctx:
            servers = register(ctx.home, fleet)
            started = time.perf_counter()
            assert fleet_run(ctx, servers, "true", max_parallel=COUNT)["status"] == "completed"
            rows.append(
                (
                    "sane: connect 20 panes (cold)",
                    f"{(time.perf_counter() - started) * 1000:.0f} ms",
                )
            )
            lib = timed(lambda: fleet_run(ctx, servers, "true", max_parallel=COUNT), 15)
            rows.append(("sane library, true x20 (warm)", f"{lib:.1f} ms (goal <= 30 ms)"))
            # The CLI is timed as a caller would meet it: warm panes, and no other
            # control client attached (this process's would receive all 20 panes'
            # output too and compete for the 2 cores); the library re-attaches after.
            ctx.hub.close()
            env = dict(os.environ, SANE_HOME=str(ctx.home), SANE_TMUX_SOCKET=srv.socket_name)
            cli = [
                str(ROOT / ".venv/bin/sane"),
                "fleet",
                "run",
                "--all",
                "--max-parallel",
                str(COUNT),
                "true",
            ]
            one_shot = timed(
                lambda: subprocess.run(cli, env=env, capture_output=True, check=True), 7
            )
            python = str(ROOT / ".venv/bin/python")
            start_up = timed(lambda: subprocess.run([python, "-c", "pass"], check=True), 7)
            click_only = timed(
                lambda: subprocess.run([python, "-c", "import click"], check=True), 7
            )
            rows.append(
                (
                    "sane CLI one-shot, true x20",
                    f"{one_shot:.0f} ms (goal <= 150 ms; same run: python -c pass "
                    f"{start_up:.0f} ms, python -c 'import click' {click_only:.0f} ms)",
                )
            )
            sleep = timed(lambda: fleet_run(ctx, servers, "sleep 1", max_parallel=COUNT), 3)
            rows.append(("sane library, sleep 1 x20", f"{sleep:.0f} ms (goal <= 1100 ms)"))
            plain = timed(lambda: parallel_ssh(fleet, []), 3)
            rows.append(("ssh x20 in parallel, new connections", f"{plain:.0f} ms"))
            control = work / "cm"
            control.mkdir()
            for s in fleet.servers:
                masters.append(
                    subprocess.Popen(
                        [
                            "ssh",
                            *ssh_opts(fleet),
                            "-N",
                            "-o",
                            "ControlMaster=yes",
                            "-o",
                            f"ControlPath={control}/{s.port}",
                            "-p",
                            str(s.port),
                            f"root@{s.host}",
                        ],
                        stdin=subprocess.DEVNULL,
                    )
                )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(list(control.iterdir())) < COUNT:
                time.sleep(0.02)  # poll interval of a deadline-bounded wait
            cm = timed(lambda: parallel_ssh(fleet, ["-o", f"ControlPath={control}/%p"]), 5)
            rows.append(("ssh x20 in parallel, over ControlMaster", f"{cm:.0f} ms"))
            rows.extend(peers(fleet, work))
    finally:
        for master in masters:
            master.terminate()
            master.wait(timeout=10)
        srv.kill()
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"fleet of {COUNT} sshd on loopback, `true` on every server")
    for name, value in rows:
        print(f"  {name:{width}}  {value}")
    return 0


def peers(fleet: Fleet, work: Path) -> list[tuple[str, str]]:
    """The other tools, each skipped (with the reason) when not installed."""
    rows: list[tuple[str, str]] = []
    hosts = [(s.host, s.port) for s in fleet.servers]
    try:
        from pssh.clients import ParallelSSHClient  # type: ignore[import-not-found, import-untyped, unused-ignore]
        from pssh.config import HostConfig  # type: ignore[import-not-found, import-untyped, unused-ignore]

        client = ParallelSSHClient(
            [h for h, _ in hosts],
            user="root",
            pkey=str(fleet.client_key),
            pool_size=COUNT,
            host_config=[HostConfig(port=p) for _, p in hosts],
        )

        def run_pssh_lib() -> None:
            output = client.run_command("true")
            client.join(output)

        rows.append(("parallel-ssh (library), warm", f"{timed(run_pssh_lib, 5):.0f} ms"))
    except ImportError as exc:
        rows.append(("parallel-ssh (library)", f"skipped: {exc}"))
    if shutil.which("parallel-ssh"):
        hostfile = work / "hosts"
        hostfile.write_text("".join(f"root@{h}:{p}\n" for h, p in hosts))
        argv = [
            "parallel-ssh",
            "-h",
            str(hostfile),
            "-p",
            str(COUNT),
            "-O",
            f"IdentityFile={fleet.client_key}",
            "-O",
            f"UserKnownHostsFile={fleet.known_hosts}",
            "-O",
            "BatchMode=yes",
            "true",
        ]
        pssh_ms = timed(lambda: subprocess.run(argv, capture_output=True, check=True), 3)
        rows.append(("pssh", f"{pssh_ms:.0f} ms"))
    else:
        rows.append(("pssh", "skipped: parallel-ssh command not installed"))
    try:
        from fabric import ThreadingGroup  # type: ignore[import-not-found, import-untyped, unused-ignore]

        group = ThreadingGroup(
            *[f"root@{h}:{p}" for h, p in hosts],
            connect_kwargs={"key_filename": str(fleet.client_key)},
        )
        group.run("true", hide=True)  # connect once: measure warm runs

        rows.append(
            (
                "Fabric ThreadingGroup, warm",
                f"{timed(lambda: group.run('true', hide=True), 5):.0f} ms",
            )
        )
        group.close()
    except ImportError as exc:
        rows.append(("Fabric", f"skipped: {exc}"))
    if shutil.which("ansible") or (Path(sys.executable).parent / "ansible").exists():
        ansible = str(Path(sys.executable).parent / "ansible")
        inventory = work / "inventory.ini"
        inventory.write_text(
            "[all]\n"
            + "".join(
                f"{s.name} ansible_host={s.host} ansible_port={s.port} ansible_user=root "
                f"ansible_ssh_private_key_file={fleet.client_key}\n"
                for s in fleet.servers
            )
        )
        env = dict(
            os.environ,
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_FORKS=str(COUNT),
            ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s",
            ANSIBLE_PYTHON_INTERPRETER="auto_silent",
        )
        for module in ("shell", "raw"):
            argv = [ansible, "all", "-i", str(inventory), "-m", module, "-a", "true"]
            subprocess.run(argv, env=env, capture_output=True, check=False)  # warm
            ansible_ms = timed(
                functools.partial(subprocess.run, argv, env=env, capture_output=True, check=False),
                3,
            )
            rows.append((f"Ansible ad-hoc -m {module}, warm", f"{ansible_ms:.0f} ms"))
    else:
        rows.append(("Ansible", "skipped: ansible not installed"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
