"""The defaults of the fleet operations, defined once for the library (``sane.api``),
the operations themselves and the tool inputs the CLI and MCP are built from.

A module of its own, with nothing to import, so that ``sane.api`` can give them as
its defaults without loading the fleet operations before they are used.
"""

from __future__ import annotations

# Each server's own deadline for a fleet run, seconds, connecting included.
RUN_TIMEOUT = 30.0
# Each server's own deadline for a fleet put (a whole file's transfer), seconds.
PUT_TIMEOUT = 600.0
# Seconds between two polls of a health wait.
HEALTH_WAIT_INTERVAL = 2.0
