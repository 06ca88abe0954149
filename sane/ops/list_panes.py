"""Every pane of a tmux server (or one session), with sane's view of it."""

from __future__ import annotations

from sane import errors
from sane.models import ListPanesResult
from sane.ops.context import Context
from sane.ops.run.busy import pane_busy
from sane.ops.run.holder import run_of
from sane.tmux import panes


def list_panes(
    ctx: Context, session: str | None = None, all_sessions: bool = False
) -> ListPanesResult:
    """Panes of ``session``, of sane's own session by default, or of every session.

    No tmux server yet, or no sane session yet, is an empty list (an agent's natural
    first call on a fresh machine); only a session named by the caller must exist."""
    if all_sessions:
        argv = ["list-panes", "-a", "-F", panes.INFO_FORMAT]
    else:
        name = session or ctx.session_name
        argv = ["list-panes", "-s", "-t", f"={name}", "-F", panes.INFO_FORMAT]
    try:
        lines = ctx.tmux(argv)
    except errors.TmuxServerNotRunning:
        if session is not None and not all_sessions:
            raise errors.SessionNotFound(
                f"no tmux session named {session!r} (no tmux server is running)", session=session
            ) from None
        return ListPanesResult(panes=[])
    except (errors.SessionNotFound, errors.PaneNotFound) as exc:
        if session is None:
            return ListPanesResult(panes=[])
        raise errors.SessionNotFound(
            f"no tmux session named {session or ctx.session_name!r}",
            session=session or ctx.session_name,
        ) from exc
    result = []
    for info, flag in panes.parse_infos(lines):
        info["busy"] = pane_busy(ctx, flag)
        info["run_id"] = run_of(flag) if info["busy"] else None
        result.append(info)
    return ListPanesResult(panes=result)
