"""The sentinel protocol: frame a command for a pane's shell and parse what comes back.

Pure functions and small state machines only: no I/O, so every edge case (split
chunks, forged markers, shells that exit) is unit-tested without tmux.
"""
