"""``sane demo``: the whole story on a throw-away local fleet, checked as it goes.

Three real sshd servers on loopback, a private tmux server and a temporary
``$SANE_HOME``: connect, run everywhere, deploy v1, check health, make server2's
migration fail and watch the v2 deploy roll server2 back while the others move on,
fix it, retry server2, verify the fleet, tear everything down. Each stage checks
what it expects against the servers themselves; the summary says which held.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sane import errors
from sane.demo import fleet as demo_fleet

NAMES = ["server1", "server2", "server3"]
FAULT = "database locked by a long-running report"


def plan_path() -> Path:
    """The demo app's plan, shipped in the package (``sane/demo/app``): ``sane demo``
    works from any install, not only from a checkout. A wheel or a checkout keeps it
    on disk as a real file next to ``app.sh``, which the plan names relative to itself."""
    from importlib.resources import files

    resource = files("sane.demo") / "app" / "plan.yaml"
    path = Path(str(resource))
    if not path.is_file():  # a zipped install: not supported, say so before anything runs
        raise errors.UsageError(
            f"the demo's plan is not a file on disk ({resource}):"
            " install tmux-sane from a wheel or a checkout"
        )
    return path


class Demo:
    def __init__(self, say: Callable[[str], None], containers: bool = False) -> None:
        self.say = say
        self.containers = containers
        self.checks: list[dict[str, Any]] = []
        self.stages: dict[str, Any] = {}

    def check(self, what: str, ok: bool, detail: Any = None) -> None:
        self.checks.append({"check": what, "ok": ok, "detail": detail})
        self.say(("  ok    " if ok else "  FAIL  ") + what)

    def run(self, base: Path, ctx: Any) -> None:
        from sane.deploy import api
        from sane.fleet.health import check
        from sane.fleet.panes import connect_many, open_server_pane
        from sane.fleet.registry import Registry
        from sane.fleet.run import fleet_run
        from sane.ops.run.command import run_command
        from sane.ops.run.options import RunOptions

        plan = str(plan_path())  # before anything starts
        if self.containers:
            from sane.demo import containers as demo_containers

            self.say(
                "== 1. three containers, ssh on 127.0.0.1: Debian 12 (bash), busybox ash"
                " behind Dropbear, Debian 13 (bash)"
            )
            servers, lines = demo_containers.start(base / "fleet", NAMES)
        else:
            demo_fleet.check_usable()
            self.say("== 1. three real OpenSSH servers on 127.0.0.1, run as you")
            servers = demo_fleet.start(base / "fleet", NAMES)
            homes = demo_fleet.homes(base / "fleet")
            lines = [
                f"{s.name}: ssh {s.user}@127.0.0.1 -p {s.port}   (its ~ is {homes[s.name]})"
                for s in servers
            ]
        registry = Registry(ctx.home)
        for server in servers:
            registry.add(server, replace=True)
        for line in lines:
            self.say(f"  {line}")

        self.say("== 2. one ssh pane per server in tmux session 'sane', then a run on all")
        connected = connect_many(ctx, servers)
        self.check(
            "all three panes connected (host keys checked)",
            all(r["ok"] for r in connected),
            [r["error"] for r in connected],
        )
        ran = fleet_run(
            ctx,
            servers,  # a container's hostname is its server name
            'echo "${SANE_DEMO_SERVER:-$(hostname)}: $(uname -sr), $0"',
        )
        self.stages["hello"] = {r["server"]: r["output"] for r in ran["results"]}
        for result in ran["results"]:
            self.say(f"  [{result['server']}] {result['output'].strip()}")
        self.check(
            "each server answered with its own name, exit 0",
            [r["output"].split(":")[0] for r in ran["results"]] == NAMES
            and ran["status"] == "completed",
        )

        self.say(f"== 3. deploy v1.0.0 ({plan})")
        first = api.deploy(ctx, plan, servers, env={"VERSION": "1.0.0"})
        self._show(first)
        self.check("v1.0.0 deployed everywhere", first["status"] == "completed")
        self._health(check(ctx.home, servers), "1.0.0", NAMES)

        self.say(f"== 4. server2's database gets locked: {FAULT!r}")
        pane = open_server_pane(ctx, servers[1])
        run_command(
            ctx,
            f"cd && printf '%s' '{FAULT}' > app/FAULT",
            pane=pane.pane_id,
            pane_state=pane,
            options=RunOptions(timeout=10),
        )

        self.say("== 5. deploy v2.0.0: server2's migration fails, server2 is rolled back")
        second = api.deploy(ctx, plan, servers, env={"VERSION": "2.0.0"})
        self._show(second)
        states = {s["server"]: s["state"] for s in second["servers"]}
        self.check(
            "server1 and server3 on v2.0.0, server2 rolled back",
            states == {"server1": "deployed", "server2": "rolled_back", "server3": "deployed"},
            states,
        )
        cached = [
            e
            for s in second["servers"]
            for e in s["steps"]
            if e["item"].startswith("file:") and e.get("action") == "unchanged"
        ]
        self.check(
            "app.sh not sent again (same sha256 already there)",
            len(cached) == len(NAMES),
            len(cached),
        )
        after = check(ctx.home, servers)
        self._health(after, "2.0.0", ["server1", "server3"])
        self._health(after, "1.0.0", ["server2"])

        self.say("== 6. the lock is released; retry server2 only")
        run_command(ctx, "cd && rm -f app/FAULT", pane=pane.pane_id, options=RunOptions(timeout=10))
        retry = api.deploy(ctx, plan, servers[1:2], env={"VERSION": "2.0.0"})
        self._show(retry)
        self.check("server2 deployed on retry", retry["status"] == "completed")

        self.say("== 7. verify the whole fleet")
        final = check(ctx.home, servers)
        self._health(final, "2.0.0", NAMES)
        self.stages.update(
            deploy_v1=first["deploy_id"],
            deploy_v2=second["deploy_id"],
            retry=retry["deploy_id"],
            final_health={r["server"]: r["data"] for r in final["servers"]},
        )

    def _show(self, report: dict[str, Any]) -> None:
        self.say(f"  deploy {report['deploy_id']}: {report['status']}")
        for server in report["servers"]:
            line = f"  [{server['server']}] {server['state']}"
            if server["failed_item"]:
                line += f" after {server['failed_item']} failed ({server['reason']});"
                line += f" undone: {', '.join(server['undone']) or 'nothing'}"
            self.say(line)

    def _health(self, health: dict[str, Any], version: str, names: list[str]) -> None:
        seen = {
            r["server"]: (r["status"], (r["data"] or {}).get("version"))
            for r in health["servers"]
            if r["server"] in names
        }
        self.check(
            f"{', '.join(names)} healthy on {version} (read from each health.json)",
            all(v == ("healthy", version) for v in seen.values()) and len(seen) == len(names),
            seen,
        )


def run_demo(
    say: Callable[[str], None], keep: bool = False, containers: bool = False
) -> dict[str, Any]:
    """Run the demo; everything it started is gone afterwards (unless ``keep``).

    ``containers``: on a mixed fleet of containers (:mod:`sane.demo.containers`) instead
    of sshd servers on loopback."""
    import os

    if keep and containers:
        raise errors.UsageError(
            "--keep does not go with --containers: the containers are "
            "removed when the demo's process ends"
        )

    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    base = Path(tempfile.mkdtemp(prefix="sane-demo-"))
    socket = f"sane-demo-{os.getpid()}"
    os.environ["SANE_HOME"] = str(base / "home")
    demo = Demo(say, containers)
    server = TmuxServer(socket_name=socket)
    try:
        with Context(server, home=base / "home") as ctx:
            demo.run(base, ctx)
    except errors.SaneError as exc:
        say(f"  FAIL  {exc.code}: {exc.message}")
        exc.details["checks"] = demo.checks
        raise
    finally:
        if not keep:
            _teardown(server, base)
            say(
                f"== torn down: {'containers removed' if containers else 'sshd servers stopped'}"
                ", tmux server killed, temp files removed"
            )
    if keep:
        say(
            f"kept: look around with `tmux -L {socket} attach -t sane` (SANE_HOME={base}/home);"
            f" stop with `sane demo fleet stop --dir {base}/fleet; tmux -L {socket} kill-server`"
        )
    return {
        "demo_ok": all(c["ok"] for c in demo.checks),
        "checks": demo.checks,
        "kept": keep,
        "tmux_socket": socket if keep else None,
        "directory": str(base) if keep else None,
        **demo.stages,
    }


def _teardown(server: Any, base: Path) -> None:
    import contextlib

    from sane.tmux.structure import kill_for_good

    with contextlib.suppress(errors.SaneError):
        kill_for_good(server)
    demo_fleet.stop(base / "fleet")
    if "sane.demo.containers" in sys.modules:
        sys.modules["sane.demo.containers"].stop(base / "fleet")
    shutil.rmtree(base, ignore_errors=True)
