"""Run a command in a pane and report exactly what happened: one module per job.

One run: claim the pane (:mod:`.busy`, the ``@sane_run`` pane option, set atomically
with ``set-option -o``), make sure the runner is installed, type one short line (or
paste a heredoc for long commands), then follow the pane's byte stream from the
control client until this run's end marker, the shell's exit, C-c's prompt, or the
deadline (:mod:`.command`, :mod:`.follow`).

A run still going at its deadline is handed over to later invocations
(:mod:`.handover`): the pane's output from that instant on is appended to a file by
``pipe-pane`` (:mod:`.pipe`), started through the same control client, so tmux's
ordering of ``%output`` before the command's reply splits the stream exactly between
what this process saw and what the file holds. ``run_wait`` / ``run_input`` /
``run_interrupt`` (:mod:`.resume`; any process, later) rebuild the stream from both
(:mod:`.record`) and return the rest of the output, nothing lost or repeated.

    options   RunOptions, defaults, run ids
    record    the run record on disk (typed), its stream, pruning
    log       a recorded run read as it stands (MCP resources), nothing disturbed
    busy      the pane's busy flag: its value (Holder), claim, release, staleness
    pipe      sane's pipe-pane: start, mark, stop
    done      runs that ended within their call, remembered by the pane (@sane_done)
    quiet     when a quiet run is asked whether it waits for input
    ending    how a run ended: dead panes, exits, (status, exit code, shell_exited)
    liveness  which panes are alive: one tmux listing shared by every followed run
    follow    the follow loop over a byte source (live stream, or the stream file)
    result    the RunResult from the output not yet returned
    handover  hand-over at the deadline; durable runs
    command   run_command: claim, type, follow (its steps shared with sane.fleet.loop)
    resume    run_wait, run_input, run_interrupt
"""
