"""The only code that talks to tmux.

``command`` runs one tmux command as a process; ``control`` keeps a control-mode
client attached and streams every pane's output; ``structure`` creates sessions and
windows (plain tmux commands under sane's creation locks).
"""
