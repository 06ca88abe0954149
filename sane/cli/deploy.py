"""``sane deploy``: run a plan on the fleet as a saga; list, inspect, resume, roll back."""

from __future__ import annotations

from typing import Any

import click

from sane.cli._output import emit, socket_option
from sane.cli._select import selected_servers, split_names
from sane.cli._stream import progress
from sane.errors import InvalidArgument, UsageError

EPILOG = """\b
Example (step `migrate` fails on server2; policy rollback: failed):
  $ sane deploy examples/deploy/plan.yaml --servers s1,s2,s3
  {"ok": true, "schema_version": 1, "deploy_id": "d20261123-171502-3fa9c1",
   "plan": "demo-app", "status": "partial", "outcome": "partial", "aborted": null,
   "counts": {"deployed": 2, "rolled_back": 1},
   "servers": [{"server": "s1", "state": "deployed", "applied": ["file:/srv/app/app.sh",
   "step:install", "step:migrate"], ...}, {"server": "s2", "state": "rolled_back",
   "failed_item": "step:migrate", "reason": "migrate run exited 3: schema locked",
   "undone": ["step:install", "file:/srv/app/app.sh"], ...}, ...],
   "journal": "/root/.sane/deploys/d20261123-171502-3fa9c1/journal.jsonl", ...}

\b
Exit status 0 only when every server ends `deployed`; 1 otherwise. A plan that does
not validate gives `plan_invalid` (exit 2) naming the field, and nothing runs.
Also: sane deploy list | status ID | resume ID | rollback ID.
"""


class _PlanOrCommand(click.Group):
    """``sane deploy PLAN`` runs a plan; ``sane deploy list`` etc. are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("deploy", cls=_PlanOrCommand, epilog=EPILOG)
def deploy_group() -> None:
    """Deploy PLAN (YAML or JSON) to the selected servers, with rollback by policy."""


@deploy_group.command("run", epilog=EPILOG)
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--servers", default=None, metavar="A,B,...", help="These servers, in this order.")
@click.option("--tag", default=None, help="Servers with this tag.")
@click.option("--all", "all_servers", is_flag=True,
              help="Every registered server (a deploy never picks servers by default).")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None,
              help="Override the plan's strategy.max_parallel.")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE",
              help="Set (or override) a variable of the plan's env.")
@click.option("--dry-run", is_flag=True, help="Validate and show the order; contact nothing.")
@click.option("--stream", is_flag=True, help="JSON lines: every journal event, then the result.")
@socket_option
def run(plan: str, servers: str | None, tag: str | None, all_servers: bool,
        max_parallel: int | None, env_pairs: tuple[str, ...], dry_run: bool, stream: bool,
        socket: str | None) -> None:
    """Deploy PLAN: files (sha256-cached), steps with undo, health gate, by strategy."""
    from sane.deploy import api

    if not (servers or tag or all_servers):
        raise UsageError("name the servers to deploy to: --servers a,b, --tag T or --all")

    env = {}
    for pair in env_pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidArgument(f"--env takes NAME=VALUE, not {pair!r}", env=pair)
        env[name] = value
    selected = selected_servers(split_names(servers), tag, all_servers)
    if dry_run:
        emit(api.dry_run(plan, selected, env, max_parallel))
    with progress(stream) as on_event:
        result = _with_context(socket, lambda ctx: api.deploy(ctx, plan, selected, on_event,
                                                              env, max_parallel))
    emit(result, 0 if result["status"] == "completed" else 1)


@deploy_group.command("list")
def list_cmd() -> None:
    """Every deploy recorded under $SANE_HOME/deploys, oldest first."""
    from sane.deploy import api
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(None)) as ctx:
        emit(api.list_deploys(ctx))


@deploy_group.command("status")
@click.argument("deploy_id")
def status_cmd(deploy_id: str) -> None:
    """What the journal of DEPLOY_ID says: per server, per step; `interrupted` when the
    deploying process died (then use resume or rollback)."""
    from sane.deploy import api
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(None)) as ctx:
        result = api.status(ctx, deploy_id)
    emit(result)


@deploy_group.command("resume")
@click.argument("deploy_id")
@click.option("--stream", is_flag=True)
@socket_option
def resume_cmd(deploy_id: str, stream: bool, socket: str | None) -> None:
    """Finish DEPLOY_ID: learn how its last runs ended, then go on without redoing
    completed steps."""
    from sane.deploy import api

    with progress(stream) as on_event:
        result = _with_context(socket, lambda ctx: api.resume(ctx, deploy_id, on_event))
    emit(result, 0 if result["status"] == "completed" else 1)


@deploy_group.command("rollback")
@click.argument("deploy_id")
@click.option("--stream", is_flag=True)
@socket_option
def rollback_cmd(deploy_id: str, stream: bool, socket: str | None) -> None:
    """Undo what DEPLOY_ID applied on every server, newest step first."""
    from sane.deploy import api

    with progress(stream) as on_event:
        result = _with_context(socket, lambda ctx: api.rollback(ctx, deploy_id, on_event))
    emit(result, 0 if result["status"] in ("rolled_back", "completed") else 1)


def _with_context(socket: str | None, work: Any) -> dict[str, Any]:
    from sane.ops.context import Context
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        result: dict[str, Any] = work(ctx)
    return result
