"""What a deploy does on one server: run a step, place or restore a file, read health.

Steps run in the server's ssh pane (a person watching the orchestrator sees them),
each in a subshell started in the login's home directory, so one step's ``cd`` or
``exit`` cannot leak into the next. Every run is durable (see ``RunOptions.durable``): its
record under ``$SANE_HOME/runs/<id>`` is written, and the pane's output piped to it,
before the command is typed, so if the deploying process is killed, ``resume`` or
``rollback`` can still wait for that very run and learn its exact output and exit code.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from sane import errors
from sane.fleet.panes import open_server_pane
from sane.fleet.registry import Server
from sane.models import RunResult
from sane.ops.context import Context
from sane.ops.run.busy import forget_if_never_typed
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_interrupt, run_wait

OUTPUT_KEPT = 8192


def wrap(command: str, env: dict[str, str]) -> str:
    """The step as the pane's shell runs it: a subshell in ``$HOME`` with ``env``."""
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    return f"(\ncd || exit 125\n{exports}{command}\n)"


def run_step(
    ctx: Context,
    server: Server,
    command: str,
    timeout: float,
    run_id: str,
    owner: dict[str, str] | None = None,
) -> RunResult:
    """Run ``command`` (already wrapped) on ``server``; C-c once ``timeout`` passes.

    Prompt detection is off (``quiet_period=None``): nobody answers a deploy step, and
    a step left at a prompt would keep its pane busy for the rollback; as before, a
    step that waits for input is interrupted at its timeout."""
    pane = open_server_pane(ctx, server)
    return run_command(
        ctx,
        command,
        pane=pane.pane_id,
        pane_state=pane,
        options=RunOptions(
            timeout=timeout,
            interrupt_on_timeout=True,
            run_id=run_id,
            max_output=None,
            durable=True,
            quiet_period=None,
            owner=owner,
        ),
    )


def finish_run(ctx: Context, result: RunResult, deadline: float) -> RunResult:
    """Follow a run left ``running`` until it ends or ``deadline``, then interrupt it;
    the output of every call joined into one result."""
    parts = [result]
    while parts[-1]["status"] == "running":
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            parts.append(run_interrupt(ctx, result["run_id"]))
            break
        parts.append(run_wait(ctx, result["run_id"], timeout=remaining, quiet_period=None))
    joined: RunResult = {**parts[-1]}
    joined["output"] = "".join(part["output"] for part in parts)
    joined["output_start"] = 0
    joined["output_bytes"] = sum(part["output_bytes"] for part in parts)
    joined["truncated"] = any(part["truncated"] for part in parts)
    return joined


def recover_run(ctx: Context, run_id: str, deadline: float) -> RunResult | None:
    """The result of a run its deploying process never saw end (it was killed);
    None when the process died before typing it (no record, or a record and nothing
    typed: :func:`forget_if_never_typed`)."""
    if forget_if_never_typed(ctx, run_id):
        return None
    try:
        first = run_wait(
            ctx, run_id, timeout=max(0.0, deadline - time.monotonic()), quiet_period=None
        )
    except errors.RunNotFound:
        return None
    return finish_run(ctx, first, deadline)


def outcome(result: RunResult) -> dict[str, Any]:
    """What the journal keeps of a run: status, exit code, the output's last 8 KiB."""
    text = result["output"]
    return {
        "status": result["status"],
        "exit_code": result["exit_code"],
        "ok": result["status"] == "completed" and result["exit_code"] == 0,
        "output": text[-OUTPUT_KEPT:],
        "output_truncated": len(text) > OUTPUT_KEPT,
        "duration_ms": result["duration_ms"],
        "run_id": result["run_id"],
    }


def _remote_dir(deploy_id: str) -> str:
    return f'"$HOME"/.sane/deploys/{shlex.quote(deploy_id)}'


def _slot(index: int) -> str:
    return f"file{index}"


def backup_script(deploy_id: str, index: int, path: str) -> str:
    """Keep what is at ``path`` before a file is placed, or mark that nothing was.

    The marker lives on the server, next to the deploy's other state, so the undo is
    right even when the journal never learnt whether the backup happened (a crash).
    """
    directory, slot, target = _remote_dir(deploy_id), _slot(index), shlex.quote(path)
    return (
        f"mkdir -p {directory} && chmod 700 {directory} && "
        f"if [ -e {directory}/{slot}.bak ] || [ -e {directory}/{slot}.absent ]; then :; "
        f"elif [ -e {target} ]; then cp -p -- {target} {directory}/{slot}.bak; "
        f"else : > {directory}/{slot}.absent; fi"
    )


def restore_script(deploy_id: str, index: int, path: str) -> str:
    """Put back what ``backup_script`` kept (an absent file is removed again)."""
    directory, slot, target = _remote_dir(deploy_id), _slot(index), shlex.quote(path)
    tmp = shlex.quote(path + ".sane-restore")
    return (
        f"if [ -e {directory}/{slot}.bak ]; then "
        f"cp -p -- {directory}/{slot}.bak {tmp} && mv -f -- {tmp} {target} && "
        f"rm -f -- {directory}/{slot}.bak; "
        f"elif [ -e {directory}/{slot}.absent ]; then rm -f -- {target} && "
        f"rm -f -- {directory}/{slot}.absent; fi"
    )


def health_passes(server: Server, until: str, env: dict[str, str]) -> tuple[bool, dict[str, Any]]:
    """Does ``server``'s health.json satisfy the jq condition now? The plan's ``env``
    values are jq variables (``.version == $VERSION``). The same rule as ``health
    wait`` (``Condition``): a boolean, and unknown health never passes."""
    from sane.fleet.health import Condition, read_one

    condition = Condition(until, env)
    report = read_one(server)
    return condition.met(report), {"status": report["status"], "reason": report["reason"]}
