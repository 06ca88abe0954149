#!/usr/bin/env python3
"""The demo workflow through the Python library (one process, one tmux control client:
every call costs milliseconds). Starts a local 3-server fleet of real sshd servers,
deploys v1, breaks server2, deploys v2 (server2 rolled back), fixes and retries it,
verifies the fleet's health, and removes everything.

    .venv/bin/python examples/deploy_demo.py
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sane import errors
from sane.demo import fleet as demo_fleet
from sane.deploy import api
from sane.fleet.health import check
from sane.fleet.panes import connect_many, pane_for_server
from sane.fleet.registry import Registry, Server
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.tmux.command import TmuxServer
from sane.tmux.structure import kill_for_good

PLAN = str(Path(__file__).resolve().parent / "deploy" / "plan.yaml")


def expect(what: str, ok: bool) -> None:
    print(("  ok    " if ok else "  FAIL  ") + what, file=sys.stderr)
    if not ok:
        raise SystemExit(1)


def versions(ctx: Context, servers: list[Server]) -> dict[str, str | None]:
    return {
        r["server"]: (r["data"] or {}).get("version") for r in check(ctx.home, servers)["servers"]
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sane-example-"))
    tmux = TmuxServer(socket_name=f"sane-example-{os.getpid()}")
    try:
        with Context(tmux, home=work / "home") as ctx:
            servers = demo_fleet.start(work / "fleet", ["server1", "server2", "server3"])
            for server in servers:
                Registry(ctx.home).add(server)
            expect("panes connected", all(r["ok"] for r in connect_many(ctx, servers)))

            first = api.deploy(ctx, PLAN, servers, env={"VERSION": "1.0.0"})
            expect("v1.0.0 deployed", first["status"] == "completed")

            pane = pane_for_server(ctx, "server2")
            run_command(ctx, "cd && echo 'database locked' > app/FAULT", pane=pane)
            second = api.deploy(ctx, PLAN, servers, env={"VERSION": "2.0.0"})
            for server in second["servers"]:
                print(
                    f"  [{server['server']}] {server['state']} {server['reason'] or ''}",
                    file=sys.stderr,
                )
            expect(
                "server2 rolled back, the others on 2.0.0",
                versions(ctx, servers)
                == {"server1": "2.0.0", "server2": "1.0.0", "server3": "2.0.0"},
            )

            run_command(ctx, "cd && rm app/FAULT", pane=pane)
            retry = api.deploy(ctx, PLAN, servers[1:2], env={"VERSION": "2.0.0"})
            expect("server2 deployed on retry", retry["status"] == "completed")
            expect("the fleet is on 2.0.0", set(versions(ctx, servers).values()) == {"2.0.0"})
    finally:
        with contextlib.suppress(errors.SaneError):
            kill_for_good(tmux)  # and its socket and lock files
        demo_fleet.stop(work / "fleet")
        shutil.rmtree(work, ignore_errors=True)
    print("deploy workflow (library): all checks passed", file=sys.stderr)


if __name__ == "__main__":
    main()
