"""``sane``: every command under one group."""

from __future__ import annotations

import click

from sane.cli._output import entry, socket_option
from sane.cli.create_file import create_file_cli
from sane.cli.demo import demo_group
from sane.cli.deploy import deploy_group
from sane.cli.detect_platform import detect_platform_cli
from sane.cli.fleet import connect, down, test, up
from sane.cli.fleet_run import fleet_group
from sane.cli.health import health_group
from sane.cli.list_panes import list_panes_cli
from sane.cli.run_command import emit_run, run_command_cli
from sane.cli.server import server_group
from sane.cli.watch import watch

WAIT_EPILOG = """\b
Example (a run left `running` by --timeout 1):
  $ sane run wait r6f0c2a91d4e7 --timeout 60
  {"ok": true, "schema_version": 1, "run_id": "r6f0c2a91d4e7", "status": "completed",
   "exit_code": 0, "output": "rest of the output\\n", "output_start": 120, ...}
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """tmux-sane: run commands in tmux panes and get exact results as JSON."""


cli.add_command(run_command_cli, name="run-command")
cli.add_command(list_panes_cli, name="list-panes")
cli.add_command(create_file_cli, name="create-file")
cli.add_command(detect_platform_cli, name="detect-platform")
cli.add_command(server_group)
server_group.add_command(test)
cli.add_command(up)
cli.add_command(connect)
cli.add_command(down)
cli.add_command(fleet_group)
cli.add_command(health_group)
cli.add_command(watch)
cli.add_command(deploy_group)
cli.add_command(demo_group)


@cli.group()
def run() -> None:
    """Follow up on a run left `running` by a timeout."""


@run.command("wait", epilog=WAIT_EPILOG)
@click.argument("run_id")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True)
@click.option("--check", is_flag=True, help="Exit 1 (command_failed) on a non-zero exit code.")
@socket_option
def run_wait_cli(run_id: str, timeout: float, check: bool, socket: str | None) -> None:
    """Wait for RUN_ID to finish; print the output not returned before."""
    from sane.ops.context import Context
    from sane.ops.runs import run_wait
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        result = run_wait(ctx, run_id, timeout=timeout)
    emit_run(dict(result), check)


@run.command("interrupt")
@click.argument("run_id")
@click.option("--grace", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds to wait for the command to stop after C-c.")
@socket_option
def run_interrupt_cli(run_id: str, grace: float, socket: str | None) -> None:
    """Send C-c to RUN_ID and report how it ended (`interrupted`, exit code 130 ...)."""
    from sane.ops.context import Context
    from sane.ops.runs import run_interrupt
    from sane.tmux.command import TmuxServer

    with Context(TmuxServer.from_env(socket)) as ctx:
        result = run_interrupt(ctx, run_id, grace=grace)
    emit_run(dict(result), False)


main = entry(cli)

if __name__ == "__main__":
    main()
