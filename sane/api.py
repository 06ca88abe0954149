"""sane's public library API: what ``import sane`` offers (``sane.__all__``).

Why a module of its own: the operations live in their layers (``sane.ops`` for one
pane, ``sane.fleet`` for many servers, ``sane.deploy``), some with signatures shaped
for the CLI and MCP (a ``home`` path first, results as plain dicts). A library user
gets one small, stable surface here instead: a :class:`Context`, the single-pane
operations as they are (already typed), and the fleet and deploy operations with
their results typed by the same TypedDicts the JSON schemas are made from (so a type
checker and ``sane schema`` describe the same documents; ``tests/test_library.py``
validates real results against those schemas). Everything else in the package may
change between minor versions; these names follow the changelog's rules.

Every failure raises a :class:`SaneError` subclass with the stable ``code`` and exit
status of the JSON contract (docs/errors.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, cast

from sane.errors import (
    Busy,
    CommandFailed,
    ConnectionFailed,
    InvalidArgument,
    NotFound,
    PaneBusy,
    SaneError,
    StateError,
    TmuxError,
)
from sane.fleet.defaults import HEALTH_WAIT_INTERVAL, RUN_TIMEOUT
from sane.fleet.registry import Registry, Server
from sane.models import (
    CreateFileResult,
    DeployReport,
    FleetPutResult,
    FleetRunResult,
    HealthResult,
    HealthWaitResult,
    ListPanesResult,
    PaneInfo,
    PlatformInfo,
    RunResult,
)
from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.ops.detect_platform import detect_platform
from sane.ops.list_panes import list_panes
from sane.ops.run.command import run_command
from sane.ops.run.handle import Run, start_run
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_input, run_interrupt, run_wait
from sane.parallel import DEFAULT_PARALLEL
from sane.tmux.command import TmuxServer

Event = dict[str, Any]

__all__: list[str] = [
    "Busy",
    "CommandFailed",
    "ConnectionFailed",
    "Context",
    "CreateFileResult",
    "DeployReport",
    "Event",
    "FleetPutResult",
    "FleetRunResult",
    "HealthResult",
    "HealthWaitResult",
    "InvalidArgument",
    "ListPanesResult",
    "NotFound",
    "PaneBusy",
    "PaneInfo",
    "PlatformInfo",
    "Registry",
    "Run",
    "RunOptions",
    "RunResult",
    "SaneError",
    "Server",
    "StateError",
    "TmuxError",
    "TmuxServer",
    "create_file",
    "deploy_rollback",
    "deploy_status",
    "detect_platform",
    "fleet_health",
    "fleet_health_wait",
    "fleet_put",
    "fleet_run",
    "list_panes",
    "run_command",
    "run_deploy",
    "run_input",
    "run_interrupt",
    "run_wait",
    "servers",
    "start_run",
]


def servers(
    names: Iterable[str] | None = None, tag: str | None = None, home: Path | None = None
) -> list[Server]:
    """The registered servers (``$SANE_HOME/servers.json``) named, else those with
    ``tag``, else all of them (``names=None``); an empty choice, an empty list of
    names included, raises ``no_servers_selected``."""
    from sane.fleet.registry import select_servers

    return select_servers(home, names, tag, all_servers=False)


def fleet_run(
    ctx: Context,
    servers: Sequence[Server],
    command: str,
    max_parallel: int = DEFAULT_PARALLEL,
    timeout: float = RUN_TIMEOUT,
    on_event: Callable[[Event], None] | None = None,
    clear_input: bool = False,
) -> FleetRunResult:
    """``command`` on every server's ssh pane (opened on demand), at most
    ``max_parallel`` at once, each within its own ``timeout`` (connecting included).
    ``on_event`` sees started/output/finished events as they happen. A pane whose
    command line holds a person's text is that server's ``pane_has_input`` error,
    unless ``clear_input`` (the text is then discarded, never run)."""
    from sane.fleet.run import fleet_run as run

    return cast(
        FleetRunResult,
        run(ctx, servers, command, max_parallel, timeout, on_event, clear_input=clear_input),
    )


def fleet_put(
    ctx: Context,
    servers: Sequence[Server],
    path: str,
    content: bytes,
    mode: int | None = None,
    parents: bool = False,
    max_parallel: int = DEFAULT_PARALLEL,
    on_event: Callable[[Event], None] | None = None,
) -> FleetPutResult:
    """Write ``content`` to the absolute ``path`` on every server (create-file: atomic,
    sha256-checked); servers that already have these bytes are left ``unchanged``.
    ``on_event`` sees begin/started/finished events (``sane.fleet.events``)."""
    from sane.fleet.run import fleet_put as put

    return cast(
        FleetPutResult,
        put(ctx, servers, path, content, mode, parents, max_parallel, on_event=on_event),
    )


def fleet_health(
    servers: Sequence[Server],
    query: str | None = None,
    home: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> HealthResult:
    """Every server's health.json, read in parallel over its ssh connection
    (``unknown`` with a reason when missing or malformed), recorded in the history;
    ``query``: a jq expression evaluated on each server's health document;
    ``on_event``: each server's read as it comes (``sane.fleet.events``)."""
    from sane.fleet.health import PARALLEL, check
    from sane.paths import sane_home

    return cast(
        HealthResult,
        check(home or sane_home(), list(servers), query, PARALLEL, on_event=on_event),
    )


def fleet_health_wait(
    servers: Sequence[Server],
    until: str,
    mode: Literal["all", "any"] = "all",
    timeout: float = 60.0,
    interval: float = HEALTH_WAIT_INTERVAL,
    home: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> HealthWaitResult:
    """Poll health until the jq condition ``until`` holds on all (or any) servers, or
    ``timeout`` passes (then ``met`` is false and ``waiting_for`` names who)."""
    from sane.fleet.health import wait
    from sane.paths import sane_home

    return cast(
        HealthWaitResult,
        wait(home or sane_home(), list(servers), until, mode, timeout, interval, on_event),
    )


def run_deploy(
    ctx: Context,
    plan: str | Path,
    servers: Sequence[Server],
    env: dict[str, str] | None = None,
    max_parallel: int | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> DeployReport:
    """Deploy the plan file (YAML or JSON, docs/deploy.md) to ``servers``: files,
    steps and the health gate, with per-server rollback; the report folded from the
    deploy's journal (``deploy_id`` for :func:`deploy_status` and
    :func:`deploy_rollback`). (Not ``deploy``: that name is the ``sane.deploy``
    package.)"""
    from sane.deploy import api

    return cast(
        DeployReport, api.deploy(ctx, str(plan), list(servers), on_event, env, max_parallel)
    )


def deploy_status(ctx: Context, deploy_id: str) -> DeployReport:
    """A deploy's report, from its journal (while it runs, or long after)."""
    from sane.deploy import api

    return cast(DeployReport, api.status(ctx, deploy_id))


def deploy_rollback(
    ctx: Context, deploy_id: str, on_event: Callable[[Event], None] | None = None
) -> DeployReport:
    """Undo everything the deploy applied, on every server, newest first."""
    from sane.deploy import api

    return cast(DeployReport, api.rollback(ctx, deploy_id, on_event))
