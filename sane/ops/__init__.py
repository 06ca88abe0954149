"""Single-pane operations: pure functions of (context, request) -> typed result."""
