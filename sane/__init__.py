"""tmux-sane: drive tmux panes, locally and over SSH, with exact results as JSON.

The library API is the names in ``__all__`` (defined in ``sane.api``, docs/library.md):
a :class:`Context` on a tmux server, ``run_command``/``run_wait``/``run_input``/
``run_interrupt``, ``create_file``, ``detect_platform``, ``list_panes``, the fleet's
``servers``/``fleet_run``/``fleet_put``/``fleet_health``, ``run_deploy``, the error
tree and the typed results. They load on first use, so ``import sane`` (and every
command-line tool, which imports this package) stays as cheap as it was.
"""

import typing  # (the command-line tools import it anyway; __future__ they need not)

__version__ = "0.1.0"

if typing.TYPE_CHECKING:  # the same names, typed, for type checkers
    from sane.api import (
        Busy,
        CommandFailed,
        ConnectionFailed,
        Context,
        CreateFileResult,
        DeployReport,
        Event,
        FleetPutResult,
        FleetRunResult,
        HealthResult,
        HealthWaitResult,
        InvalidArgument,
        ListPanesResult,
        NotFound,
        PaneBusy,
        PaneInfo,
        PlatformInfo,
        Registry,
        RunOptions,
        RunResult,
        SaneError,
        Server,
        StateError,
        TmuxError,
        TmuxServer,
        create_file,
        deploy_rollback,
        deploy_status,
        detect_platform,
        fleet_health,
        fleet_health_wait,
        fleet_put,
        fleet_run,
        list_panes,
        run_command,
        run_deploy,
        run_input,
        run_interrupt,
        run_wait,
        servers,
    )

__all__ = [
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
    "RunOptions",
    "RunResult",
    "SaneError",
    "Server",
    "StateError",
    "TmuxError",
    "TmuxServer",
    "__version__",
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
]


def __getattr__(name: str) -> typing.Any:
    """A public name, imported from ``sane.api`` on first use."""
    if name in __all__:
        from sane import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sane' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
