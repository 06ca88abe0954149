"""What the container fleet costs against the loopback fleet, measured in one run.

Reproduce (repository root, root user, after ``bin/sane-bootstrap`` built the images)::

    .venv/bin/python bench/bench_containers.py

Everything runs on this machine: a loopback fleet of 6 sshd (``sane.testing.fleet``) and a
container fleet of 3 Debian + 3 busybox containers (``sane.testing.containers``, podman or
Docker), a private tmux server, temporary files; all removed at the end.

Measured, wall clock:

* start and close of each fleet (the container fleet with and without its engine
  service: the pytest fixtures share one service per session);
* ``containers/build-images`` when every image is cached (what ``bin/sane-bootstrap``
  pays on every run);
* sane connecting 6 panes (cold), then ``fleet_run(ctx, servers, "true")`` warm (median
  of 15);
* one ``run_command`` of ``true`` on a warm pane, median of 50: loopback bash, Debian
  bash container, busybox ash container;
* the ratios container fleet / loopback fleet of those pairs, both sides of each measured
  in this run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_fleet import timed  # this directory: the script's own path entry

from sane.fleet.panes import pane_for_server
from sane.fleet.registry import Server
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.testing.containers import ContainerFleet, ContainersUnavailable
from sane.testing.engine import Service, find_engine
from sane.testing.fleet import Fleet, register
from sane.testing.pytest_plugin import TmuxTestServer

ROOT = Path(__file__).resolve().parent.parent
MIXED = ["debian"] * 3 + ["busybox"] * 3


def once_ms(fn: Callable[[], object]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return (time.perf_counter() - started) * 1000, value


def sane_rows(
    label: str,
    ctx: Context,
    servers: Sequence[Server],
    single: dict[str, str],
    figures: dict[str, float],
) -> list[tuple[str, str]]:
    """Rows for one fleet; the figures also go into ``figures`` (for the ratios)."""
    rows = []

    def run_all() -> dict[str, Any]:
        return dict(fleet_run(ctx, list(servers), "true", max_parallel=6))

    cold, result = once_ms(run_all)
    assert result["status"] == "completed", result
    rows.append((f"{label}: connect 6 panes and run true (cold)", f"{cold:.0f} ms"))
    warm = timed(run_all, 15)
    rows.append((f"{label}: fleet run true x6 (warm, median of 15)", f"{warm:.1f} ms"))
    figures.update({f"{label} cold": cold, f"{label} warm": warm})
    for name, what in single.items():
        pane = pane_for_server(ctx, name)

        def run_one(pane: str = pane) -> None:
            run_command(ctx, "true", pane=pane, options=RunOptions(timeout=30))

        one = timed(run_one, 50)
        figures[f"{label} one {name}"] = one
        rows.append((f"{label}: one run of true, {what} (median of 50)", f"{one:.2f} ms"))
    return rows


def ratio_rows(figures: dict[str, float]) -> list[tuple[str, str]]:
    """Container fleet / loopback fleet, each pair measured in this run."""
    pairs = [
        ("start 6 servers", "containers start", "loopback start"),
        ("connect 6 panes and run true (cold)", "containers cold", "loopback cold"),
        ("fleet run true x6 (warm)", "containers warm", "loopback warm"),
        ("one run of true, Debian bash", "containers one deb1", "loopback one s1"),
        ("one run of true, busybox ash", "containers one bb1", "loopback one s1"),
    ]
    return [
        (f"ratio containers / loopback: {what}", f"{figures[mine] / figures[base]:.2f}x")
        for what, mine, base in pairs
    ]


def main() -> int:
    try:
        engine = find_engine()
    except ContainersUnavailable as exc:
        print(f"skipped: {exc.reason}")
        return 0
    rows: list[tuple[str, str]] = []
    figures: dict[str, float] = {}
    build = ROOT / "containers" / "build-images"
    cached, _ = once_ms(lambda: subprocess.run([str(build)], check=True, capture_output=True))
    rows.append(("containers/build-images, every image cached", f"{cached:.0f} ms"))

    loop_up, loop = once_ms(lambda: Fleet(6))
    loop_down, _ = once_ms(loop.close)
    figures["loopback start"] = loop_up
    rows.append(
        ("loopback fleet of 6 sshd: start / close", f"{loop_up:.0f} ms / {loop_down:.0f} ms")
    )
    service_up, service = once_ms(lambda: Service(engine))
    try:
        up, fleet = once_ms(lambda: ContainerFleet(images=MIXED, service=service))
        down, _ = once_ms(fleet.close)
        figures["containers start"] = up
        rows.append((f"{engine.kind} service: start", f"{service_up:.0f} ms"))
        rows.append(
            (
                "container fleet of 3 Debian + 3 busybox: start / close (shared service)",
                f"{up:.0f} ms / {down:.0f} ms",
            )
        )
        one_up, one = once_ms(lambda: ContainerFleet(1, image="busybox", service=service))
        one_down, _ = once_ms(one.close)
        rows.append(
            ("container fleet of 1 busybox: start / close", f"{one_up:.0f} ms / {one_down:.0f} ms")
        )
        work = Path(tempfile.mkdtemp(prefix="sane-bench-containers-"))
        srv = TmuxTestServer(f"sane-bench-containers-{os.getpid()}")
        srv.kill()
        srv.start()
        try:
            with Fleet(6) as loopback, Context(srv.server, home=work / "a") as ctx:
                rows += sane_rows(
                    "loopback",
                    ctx,
                    register(ctx.home, loopback),
                    {"s1": "loopback sshd, bash"},
                    figures,
                )
            with (
                ContainerFleet(images=MIXED, service=service) as containers,
                Context(srv.server, home=work / "b") as ctx,
            ):
                rows += sane_rows(
                    "containers",
                    ctx,
                    register(ctx.home, containers),
                    {"deb1": "Debian container, bash", "bb1": "busybox container, ash"},
                    figures,
                )
        finally:
            srv.kill()
            shutil.rmtree(work, ignore_errors=True)
    finally:
        service.close()
    rows += ratio_rows(figures)
    width = max(len(label) for label, _ in rows)
    print(
        f"bench_containers ({engine.kind}, {time.strftime('%H:%M')}, load {os.getloadavg()[0]:.1f})"
    )
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
