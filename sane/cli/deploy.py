"""``sane deploy``: run a plan on the fleet as a saga; list, inspect, resume, roll back."""

from __future__ import annotations

import click

from sane.cli.build import command

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


LIST_EPILOG = """\b
Example:
  $ sane deploy list
  {"ok": true, "schema_version": 1, "deploys": [{"deploy_id": "d20261123-171246-33fb41",
   "plan": "demo-app", "started_at": 1795453966.88538, "status": "completed",
   "servers": 2, "counts": {"deployed": 2}}]}
"""

STATUS_EPILOG = """\b
Example:
  $ sane deploy status d20261123-171246-33fb41 --jq '{deploy_id, status, counts,
      servers: [.servers[] | {server, state, applied}]}'
  {"deploy_id": "d20261123-171246-33fb41", "status": "completed",
   "counts": {"deployed": 2}, "servers": [{"server": "server1", "state": "deployed",
   "applied": ["file:~/app/app.sh", "step:release", "step:migrate", "step:switch"]},
   {"server": "server2", "state": "deployed", "applied": [...]}]}
"""

ROLLBACK_EPILOG = """\b
Example:
  $ sane deploy rollback d20261123-171246-33fb41 --jq '{status, counts,
      servers: [.servers[] | {server, state, undone}]}'
  {"status": "rolled_back", "counts": {"rolled_back": 2}, "servers": [{"server":
   "server1", "state": "rolled_back", "undone": ["step:switch", "step:migrate",
   "step:release", "file:~/app/app.sh"]}, {"server": "server2", ...}]}
"""

RESUME_EPILOG = """\b
Example (a deploy that already ended has nothing left to do: same report, exit 1
because it is not `completed`):
  $ sane deploy resume d20261123-171246-33fb41 --jq '{deploy_id, status, counts}'
  {"deploy_id": "d20261123-171246-33fb41", "status": "rolled_back",
   "counts": {"rolled_back": 2}}
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


# Options, defaults and help: the command table (sane.tools, rows deploy*; `--dry-run`
# is deploy_plan_check with the same arguments).
deploy_group.add_command(command("deploy run", EPILOG))
deploy_group.add_command(command("deploy list", LIST_EPILOG))
deploy_group.add_command(command("deploy status", STATUS_EPILOG))
deploy_group.add_command(command("deploy resume", RESUME_EPILOG))
deploy_group.add_command(command("deploy rollback", ROLLBACK_EPILOG))
