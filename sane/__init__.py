"""tmux-sane: drive tmux panes, locally and over SSH, with exact results as JSON."""

__version__ = "0.1.0"
