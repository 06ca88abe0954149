"""The fleet: a registry of servers, SSH panes to them, and runs across them."""
