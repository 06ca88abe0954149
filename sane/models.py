"""The JSON contract: every result sane returns, as typed dictionaries.

Why TypedDict and not pydantic models here: a one-shot ``sane-run-command`` must start
in well under 120 ms, and importing pydantic alone costs ~170 ms on the target
machine. TypedDicts cost nothing to import, serialise with :mod:`json` directly and
are checked by mypy. pydantic still owns the contract: :mod:`sane.schema` builds
``TypeAdapter``s over these very types to emit the JSON Schema and to validate every
document in the tests, and input files (servers.json, plans) are pydantic models.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from sane.envelope import SCHEMA_VERSION  # noqa: F401  (the contract's version, kept here too)

RunStatus = Literal["completed", "running", "interrupted", "waiting_input", "lost"]


class RunResult(TypedDict):
    """What one run (or one wait on a run) reports."""

    run_id: str
    pane: str
    command: str | None
    """The command's text; null from ``run_wait``/``run_interrupt`` of a run that ended
    within the call that started it (which returned the command), maybe in another
    process: sane keeps only its ending then."""
    status: RunStatus
    exit_code: int | None
    output: str
    """Output of this call as text; invalid UTF-8 appears as U+FFFD (see output_base64)."""
    output_base64: str | None
    """The exact output bytes, base64, present only when they are not valid UTF-8."""
    output_start: int
    """Bytes of this run's output already returned by earlier calls (0 for a new run)."""
    output_bytes: int
    """Size in bytes of this call's output before any truncation."""
    truncated: bool
    full_output_path: str | None
    """Where the untruncated output is kept when ``truncated`` is true."""
    shell_exited: bool
    """The command ended the pane's shell (e.g. ``exit 3``); sane restarts it on next use."""
    shell_restarted: bool
    """The shell this run ran in is not the one earlier runs in this pane used: it had
    died (``exit``, ``set -e``, TMOUT, killed) and sane started a new one, or a new
    shell had taken its place (``exec bash``, a nested shell). ``cd``, variables and
    functions of earlier runs are gone (exported ones survive an exec)."""
    duration_ms: float
    prompt: str | None
    """With ``waiting_input``: the prompt on the screen (the cursor's line up to the
    cursor, else the last non-empty line); otherwise null."""
    waiting_reason: str | None
    """With ``waiting_input``: how sane knows. ``tty_read`` (the kernel shows the command
    blocked reading the terminal) or ``prompt_pattern`` (the process state could not be
    read; the screen shows a known prompt); otherwise null."""
    waiting_program: str | None
    """With ``tty_read``: the name of the process that waits (``sudo``, ``python3``)."""


class PaneInfo(TypedDict):
    pane_id: str
    session: str
    window_index: int
    window_name: str
    pane_index: int
    title: str
    current_command: str
    cwd: str
    width: int
    height: int
    active: bool
    dead: bool
    sane_role: str | None
    sane_server: str | None
    busy: bool
    run_id: str | None


class ListPanesResult(TypedDict):
    panes: list[PaneInfo]


class CreateFileResult(TypedDict):
    path: str
    """Absolute path, as resolved on the host."""
    pane: str
    bytes: int
    sha256: str
    mode: str
    """Octal permission bits, e.g. "0644"."""
    action: Literal["created", "replaced"]
    backup_path: str | None
    duration_ms: float


class DistroInfo(TypedDict):
    id: str | None
    version_id: str | None
    name: str | None


class ShellInfo(TypedDict):
    """A shell: its executable, its name (``ash`` for busybox's ash), its version."""

    path: str | None
    name: str | None
    version: str | None


class LocaleInfo(TypedDict):
    lang: str | None
    lc_all: str | None
    charmap: str | None


class PlatformInfo(TypedDict):
    """Facts about a host; ``null`` means the probe could not tell, never a guess."""

    os: str | None
    kernel_release: str | None
    arch: str | None
    distro: DistroInfo | None
    hostname: str | None
    user: str | None
    uid: int | None
    home: str | None
    shell: ShellInfo
    """The shell running in the pane (the one sane's runner lives in)."""
    login_shell: ShellInfo
    """The user's login shell, from the password database (may differ: a pane running
    ``zsh`` for a user whose login shell is bash, or sane's POSIX shell on a host whose
    login shell it cannot drive)."""
    package_managers: list[str]
    init_system: str | None
    init_process: str | None
    container: str | None
    virtualization: str | None
    tools: dict[str, bool]
    coreutils: str | None
    """Whose core utilities the host runs, as its ``ls --version`` says: ``gnu``,
    ``busybox``, ``toybox`` or ``uutils``; null when it names none of them (the BSDs' and
    macOS's ``ls`` print only a usage)."""
    locale: LocaleInfo
    sudo_without_password: bool | None
    pane: str | None
    duration_ms: float | None


class ErrorBody(TypedDict):
    code: str
    message: str
    details: dict[str, Any]


# -- fleet documents (server registry, fleet runs, health) ------------------------------


class ServerInfo(TypedDict):
    """One server as servers.json stores it (never a secret: keys by path only)."""

    name: str
    host: str
    port: int | None
    user: str | None
    identity_file: str | None
    extra_identity_files: list[str]
    ssh_options: dict[str, str]
    tags: list[str]
    health_path: str


class ServerListEntry(ServerInfo):
    connection: Literal["connected", "unreachable", "disconnected"]
    # what the last `sane health` recorded for it (health-history.json); null before one
    health_history: dict[str, Any] | None


class ServerListResult(TypedDict):
    servers: list[ServerListEntry]


class ServerAddResult(TypedDict):
    server: ServerInfo
    warnings: list[str]


class ServerTestResult(TypedDict):
    server: str
    reachable: bool
    latency_ms: float


class FleetServerResult(TypedDict):
    """One server's part of a fleet run: a run result, or why there is none.
    ``not_started``: the command was never typed there (``error.code`` ``not_started``,
    ``details.reason`` ``cancelled``: the fleet run was stopped by a Ctrl-C or a
    cancelled call before this server's command was typed); nothing ran there and
    its pane is free."""

    server: str
    status: Literal[
        "completed",
        "running",
        "interrupted",
        "waiting_input",
        "lost",
        "unreachable",
        "not_started",
        "error",
    ]
    exit_code: int | None
    output: str
    ok: bool
    """The command completed with exit code 0."""
    error: ErrorBody | None
    started_ms: float
    finished_ms: float
    run_id: NotRequired[str]
    pane: NotRequired[str]
    command: NotRequired[str]
    output_base64: NotRequired[str | None]
    output_start: NotRequired[int]
    output_bytes: NotRequired[int]
    truncated: NotRequired[bool]
    full_output_path: NotRequired[str | None]
    shell_exited: NotRequired[bool]
    shell_restarted: NotRequired[bool]
    duration_ms: NotRequired[float]
    prompt: NotRequired[str | None]
    waiting_reason: NotRequired[str | None]
    waiting_program: NotRequired[str | None]


class FleetRunResult(TypedDict):
    status: Literal["completed", "partial", "failed"]
    command: str
    counts: dict[str, int]
    results: list[FleetServerResult]
    duration_ms: float


class FleetPutServer(TypedDict):
    """One server's copy: the create-file result, or ``unchanged`` (same sha256 there)."""

    server: str
    ok: bool
    error: ErrorBody | None
    path: NotRequired[str]
    pane: NotRequired[str]
    bytes: NotRequired[int]
    sha256: NotRequired[str]
    mode: NotRequired[str]
    action: NotRequired[Literal["created", "replaced", "unchanged"]]
    backup_path: NotRequired[str | None]
    duration_ms: NotRequired[float]


class FleetPutResult(TypedDict):
    """``fleet put``: one create-file result per server (``action`` ``unchanged`` where
    the file already had these bytes), or its error."""

    status: Literal["completed", "partial", "failed"]
    sha256: str
    bytes: int
    results: list[FleetPutServer]


class HealthReport(TypedDict):
    """One server's health; ``unknown`` always comes with a ``reason``."""

    server: str
    path: str
    status: Literal["healthy", "degraded", "unhealthy", "unknown"]
    reason: str | None
    data: dict[str, Any] | None
    latency_ms: float
    history: dict[str, Any] | None
    error: NotRequired[str]
    """The connection error's code when ssh failed."""
    query: NotRequired[Any]
    query_error: NotRequired[str]
    """Why ``query`` is null for this server: jq failed on its document, or ran past
    its time limit (the other servers' answers stand)."""


class HealthResult(TypedDict):
    servers: list[HealthReport]
    counts: dict[str, int]
    all_healthy: bool


class HealthWaitResult(TypedDict):
    met: bool
    until: str
    mode: Literal["all", "any"]
    waiting_for: list[str]
    servers: list[HealthReport]


# -- deploy reports (sane/deploy/api.py: folded from the journal) ----------------------


class DeployServerReport(TypedDict):
    server: str
    state: str
    """deployed, rolled_back, rollback_failed, failed, untouched, in_progress, interrupted."""
    reason: str | None
    failed_item: str | None
    applied: list[str]
    undone: list[str]
    undo_failed: list[str]
    in_flight: list[dict[str, Any]]
    steps: list[dict[str, Any]]


class DeployReport(TypedDict):
    deploy_id: str
    plan: str | None
    status: str
    """completed, partial, failed, rolled_back, running, interrupted."""
    outcome: str
    aborted: str | None
    counts: dict[str, int]
    servers: list[DeployServerReport]
    journal: str
    duration_ms: float | None


class DeployListEntry(TypedDict):
    """One recorded deploy; an unreadable journal gives only its id, status and error."""

    deploy_id: str
    status: str
    """completed, partial, failed, rolled_back, running, interrupted or unreadable."""
    plan: NotRequired[str | None]
    started_at: NotRequired[float]
    servers: NotRequired[int]
    counts: NotRequired[dict[str, int]]
    error: NotRequired[ErrorBody]


class DeployListResult(TypedDict):
    deploys: list[DeployListEntry]


class DeployFileEntry(TypedDict):
    path: str
    sha256: str
    bytes: int


class DeployDryRun(TypedDict):
    """What a deploy would do, in what order; nothing was contacted."""

    dry_run: Literal[True]
    plan: str
    source: str
    servers: list[str]
    batches: list[list[str]]
    """The servers in the order the strategy works on them, batch by batch."""
    items: list[str]
    files: list[DeployFileEntry]
    strategy: dict[str, Any]
    policy: dict[str, Any]
    env: dict[str, str]


class ScreenResult(TypedDict):
    pane: str
    text: str
    """The visible lines (or the last ``lines`` lines), joined by newlines."""
    cursor_x: int
    cursor_y: int
    width: int
    height: int
    in_mode: bool
    """The pane is in a tmux mode (copy mode): what it shows is not the program's."""


class SendKeysResult(TypedDict):
    pane: str
    sent_keys: list[str]
    sent_text_chars: int
    enter: bool


class WaitForTextResult(TypedDict):
    pane: str
    matched: bool
    match: str | None
    text: str
    waited_ms: float


class ServerShowResult(TypedDict):
    server: ServerInfo


class ServerPaneResult(TypedDict):
    server: str
    connection: Literal["connected", "unreachable"]
    pane: str
    session: str
    window: str
    window_index: int
    window_name: str
    window_panes: int
    pane_index: int
    target: str
    selected: bool
    attach: str
    switch: str


class ServerRemoveResult(TypedDict):
    removed: ServerInfo


class ImportSkipped(TypedDict):
    name: str
    reason: str


class ServerImportResult(TypedDict):
    imported: list[ServerInfo]
    skipped: list[ImportSkipped]


class ConnectReport(TypedDict):
    server: str
    ok: bool
    pane: str | None
    error: ErrorBody | None
    shell: NotRequired[str | None]
    """The runner the pane's shell took (``posix``, ``fish``), when connected."""
    shell_note: NotRequired[str | None]
    """Why sane started sh in place of a login shell it cannot drive (else null)."""
    started_ms: float
    finished_ms: float
    duration_ms: float


class ConnectResult(TypedDict):
    session: str
    servers: list[ConnectReport]


class DownResult(TypedDict):
    closed: list[str]


class FleetDetectResult(TypedDict):
    status: Literal["completed", "partial", "failed"]
    results: list[dict[str, Any]]
    """Per server: ``server``, ``ok``, ``error`` and, when ok, the detect-platform fields."""


class HealthSetResult(TypedDict):
    server: str
    health: dict[str, Any]


# -- CLI-only documents (no tool: `sane watch --once`, `sane demo fleet start|stop`) ----


class WatchRow(TypedDict):
    """One server in ``sane watch``: its pane, connection, current run and health."""

    server: str
    host: str
    """``HOST:PORT`` as registered (the port ``None`` when ssh chooses it)."""
    tags: list[str]
    pane: str | None
    connection: Literal["connected", "disconnected", "unreachable"]
    run_id: str | None
    health: Literal["healthy", "degraded", "unhealthy", "unknown"] | None
    """null without a health read (``--no-health``)."""
    health_reason: str | None
    version: Any
    """The ``version`` field of the server's health.json, when it has one."""


class WatchResult(TypedDict):
    servers: list[WatchRow]


class WatchStopped(TypedDict):
    """What the live view prints when C-c ends it."""

    stopped: Literal[True]


class DemoFleetServer(ServerInfo):
    home: str
    """The server's home directory (on this machine)."""


class DemoFleetStartResult(TypedDict):
    directory: str
    servers: list[DemoFleetServer]


class DemoFleetStopResult(TypedDict):
    stopped: list[str]


class DemoCheck(TypedDict):
    check: str
    ok: bool
    detail: Any


class DemoResult(TypedDict):
    """``sane demo``'s summary. The story's stages are present once reached (a story
    that stops early on a failed check has the ones before it)."""

    demo_ok: bool
    checks: list[DemoCheck]
    kept: bool
    tmux_socket: str | None
    directory: str | None
    hello: NotRequired[dict[str, str]]
    """Each server's answer to the first fleet run."""
    deploy_v1: NotRequired[str]
    deploy_v2: NotRequired[str]
    retry: NotRequired[str]
    """The deploy ids of the story's three deploys."""
    final_health: NotRequired[dict[str, dict[str, Any] | None]]
    """Each server's health.json at the end."""
