"""The input of every command an agent can call, as pydantic models.

One source of truth for three consumers: ``sane schema`` prints their JSON Schema, the
tool definitions for OpenAI / Anthropic / MCP are built from them, and the MCP server
validates each call's arguments with them before calling the library. Field names are
the CLI's option names with ``_`` for ``-`` (``--max-output`` is ``max_output``); a
test checks that they stay in step with the click commands.

pydantic is imported here, so this module is for the schema and the MCP server, never
for a one-shot CLI start-up.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from sane.fleet.defaults import HEALTH_WAIT_INTERVAL
from sane.fleet.defaults import RUN_TIMEOUT as FLEET_RUN_TIMEOUT
from sane.fleet.health import PARALLEL as HEALTH_PARALLEL
from sane.fleet.registry import HEALTH_PATH
from sane.ops.create_file import MODE_PATTERN
from sane.ops.detect_platform import PROBE_TIMEOUT
from sane.ops.run.options import DEFAULT_QUIET_PERIOD, INTERRUPT_GRACE, RunOptions
from sane.parallel import DEFAULT_PARALLEL
from sane.strict import Strict

# What a model host takes in one tool result: Claude Code refuses results over ~25k
# tokens, OpenHands and Claude Code's own Bash tool cap output at 30,000 characters.
# 24,000 bytes of output stay under 30,000 characters of JSON text for typical output
# (every newline is two characters there). Past it, the head and the tail are kept and
# the whole output is saved to a private file, offered as an MCP resource
# (`full_output_path`). The CLI keeps its own default.
AGENT_MAX_OUTPUT = 24_000
# A run is followed this long unless told: the library's default (RunOptions) for the tool too.
RUN_TIMEOUT = RunOptions().timeout
# A fleet result carries ~700 characters of fields per server beside its output.
FLEET_MAX_OUTPUT = 20_000
# An agent's deadline for a transfer (create_file, fleet_put): under the common 60 s
# request timeout of MCP clients (the TypeScript SDK's default), which would otherwise
# give up first and never see the result; the CLI keeps the library's 600 s.
AGENT_TRANSFER_TIMEOUT = 45.0

PANE = "tmux target pane (%ID or session:window.pane); default: sane's own local pane."
SERVER = "Run through this registered server's ssh pane (connects on demand); not with pane."
SERVERS = "These servers, in this order (default: every server, or those with `tag`)."
TAG = "Only servers with this tag."
# The fleet selection and its parallelism, one definition for every command that takes them.
ServerNames = Annotated[list[str] | None, Field(description=SERVERS)]
ServerTag = Annotated[str | None, Field(description=TAG)]
ALL_SERVERS = "Every registered server (the default when neither servers nor tag is given)."
AllServers = Annotated[bool, Field(description=ALL_SERVERS)]
MaxParallel = Annotated[int, Field(ge=1, description="At most this many at once.")]
OnCancel = Annotated[
    Literal["interrupt", "keep"],
    Field(
        description="When the client cancels the call (or its own request timeout fires): "
        "`interrupt` sends C-c and frees the pane; `keep` leaves the command running, to "
        "follow with run_wait (the run id is in the pane's pane_busy error and list_panes). "
        "Either way nothing is typed after the cancellation."
    ),
]
RUN_ID = "A run id from a result whose status was `running` or `waiting_input`."
QUIET_PERIOD = (
    "Seconds without output after which sane checks whether the command waits "
    "for terminal input (then status `waiting_input` with `prompt`; answer with "
    "run_input); 0: never check."
)


class Input(Strict):
    """A tool's arguments: unknown ones refused, no NUL byte in text (:mod:`sane.strict`)."""


class TypingInput(Input):
    """The arguments of a command that types into a pane's shell (sane.ops.has_input)."""

    clear_input: bool = Field(
        default=False,
        description="Text a person left on the pane's command line "
        "is discarded (never run) instead of refusing with pane_has_input.",
    )


class RunCommandInput(TypingInput):
    """Run a shell command in a tmux pane; get its exact output and exit code. Status
    `completed` has the exit code; `running` (the timeout passed, the command goes on):
    call run_wait with its run_id for the rest, or run_interrupt; `waiting_input` (it
    waits for terminal input, `prompt` shows it): answer with run_input, or
    run_interrupt. For full-screen programs use read_screen/send_keys."""

    command: str = Field(
        min_length=1,
        description="Shell command line, run as typed in the "
        "pane's shell (state such as cd/export persists between runs).",
    )
    pane: str | None = Field(default=None, description=PANE)
    server: str | None = Field(default=None, description=SERVER)
    timeout: float = Field(
        default=RUN_TIMEOUT,
        ge=0,
        description="Seconds to wait; past it the run "
        "is reported `running` with the output so far (use run_wait).",
    )
    interrupt_on_timeout: bool = Field(
        default=False, description="Send C-c at the timeout and report `interrupted`."
    )
    keep_ansi: bool = Field(default=False, description="Keep the program's escape sequences.")
    check: bool = Field(
        default=False,
        description="A non-zero exit code becomes the error "
        "`command_failed` (the run result is still in the document).",
    )
    max_output: int = Field(
        default=AGENT_MAX_OUTPUT,
        ge=0,
        description="Past this many "
        "bytes keep the output's head and tail; the whole output is "
        "saved (`full_output_path`, an MCP resource) (0: no limit).",
    )
    quiet_period: float = Field(default=DEFAULT_QUIET_PERIOD, ge=0, description=QUIET_PERIOD)
    on_cancel: OnCancel = "interrupt"


class RunWaitInput(Input):
    """Wait again on a run left `running` or `waiting_input`; returns only the output not
    returned before."""

    run_id: str = Field(min_length=1, description=RUN_ID)
    timeout: float = Field(default=30.0, ge=0, description="Seconds to wait this time.")
    check: bool = Field(
        default=False, description="A non-zero exit code becomes the error `command_failed`."
    )
    quiet_period: float = Field(default=DEFAULT_QUIET_PERIOD, ge=0, description=QUIET_PERIOD)


class RunInputInput(Input):
    """Answer a run's prompt (status `waiting_input`): type text into its command, then
    follow it like run_wait (next status: completed, waiting_input again, or running)."""

    run_id: str = Field(min_length=1, description=RUN_ID)
    text: str = Field(
        description="Typed literally (any characters); never recorded. The "
        "terminal does not echo a password, so it is in no output either."
    )
    no_enter: bool = Field(
        default=False,
        description="Do not press Enter after the text (a single key such as `q` for a pager).",
    )
    multi_line: bool = Field(
        default=False,
        description="Allow line breaks in text (each "
        "ends a line as Enter does). Without it an answer is one line: "
        "a second line would reach the shell as a command once the "
        "program exits.",
    )
    timeout: float = Field(
        default=30.0, ge=0, description="Seconds to follow the run after typing."
    )
    check: bool = Field(
        default=False, description="A non-zero exit code becomes the error `command_failed`."
    )
    quiet_period: float = Field(default=DEFAULT_QUIET_PERIOD, ge=0, description=QUIET_PERIOD)


class RunInterruptInput(Input):
    """Send C-c to a run left `running` and report how it ended."""

    run_id: str = Field(min_length=1, description=RUN_ID)
    grace: float = Field(
        default=INTERRUPT_GRACE,
        ge=0,
        description="Seconds to wait for the command to stop after C-c.",
    )
    force: bool = Field(
        default=False,
        description="Interrupt even a run that is a deploy's "
        "step (refused with run_owned otherwise: the deploy would fail the "
        "step and roll back).",
    )


class CreateFileInput(TypingInput):
    """Create a file on the pane's host with exactly the given bytes, atomically."""

    nul_allowed: ClassVar[frozenset[str]] = frozenset({"content"})

    path: str = Field(
        min_length=1,
        description="File path on the host; relative paths "
        "resolve against the pane's current directory.",
    )
    content: str | None = Field(default=None, description="The content as text (UTF-8).")
    content_base64: str | None = Field(
        default=None, description="The content as base64 (binary files); not with `content`."
    )
    pane: str | None = Field(default=None, description=PANE)
    server: str | None = Field(default=None, description=SERVER)
    mode: str | None = Field(
        default=None,
        pattern=MODE_PATTERN,
        description='Octal permission bits, e.g. "0644" (default: the replaced file\'s, or 0644).',
    )
    parents: bool = Field(default=False, description="Create missing parent directories.")
    no_overwrite: bool = Field(
        default=False, description="Fail with file_exists if the path exists."
    )
    backup: bool = Field(default=False, description="Keep a copy of a replaced file beside it.")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Refuse to install unless the content has this checksum.",
    )
    timeout: float = Field(
        default=AGENT_TRANSFER_TIMEOUT, ge=0, description="Seconds for the whole transfer."
    )


class DetectPlatformInput(TypingInput):
    """OS, distro, shell, package managers, tools and environment of the pane's host."""

    pane: str | None = Field(default=None, description=PANE)
    server: str | None = Field(default=None, description=SERVER)
    timeout: float = Field(default=PROBE_TIMEOUT, ge=0, description="Seconds for the probe.")


class ListPanesInput(Input):
    """The panes of the tmux server with their sane role, server and busy state."""

    session: str | None = Field(default=None, description="Session to list (default: sane's).")
    all: bool = Field(default=False, description="List the panes of every session.")


class ServerListInput(Input):
    """The registered servers, with the state of their ssh pane (`connection`) and what
    the last health check found (`health_history`)."""

    tag: ServerTag = None


class ServerAddInput(Input):
    """Add a server to the registry (servers.json). Keys only: never a password."""

    name: str = Field(description="Server name (letters, digits, . _ -).")
    host: str = Field(description="Hostname or address.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Default: ssh's own (the user's ssh config's Port for that host, else 22).",
    )
    user: str | None = Field(default=None, description="Login name (default: ssh's).")
    identity: str | None = Field(
        default=None, description="Private key file (kept as a path, never read)."
    )
    ssh_options: dict[str, str] = Field(
        default_factory=dict, description='Extra ssh_config options, e.g. {"ConnectTimeout": "5"}.'
    )
    tags: list[str] = Field(default_factory=list, description="Tags to select servers by.")
    health_path: str = Field(
        default=HEALTH_PATH, description="Where the server's health.json lives."
    )
    replace: bool = Field(default=False, description="Overwrite a server of that name.")


class ServerTestInput(Input):
    """Connect to a server and report the latency, or exactly why not."""

    name: str = Field(description="A registered server's name.")
    accept_new: bool = Field(
        default=False, description="Trust the host key on first contact (never a changed one)."
    )


class FleetRunInput(TypingInput):
    """Run one command on many servers in parallel (bounded); per-server exact results."""

    command: str = Field(min_length=1, description="Shell command line.")
    servers: ServerNames = None
    tag: ServerTag = None
    all: AllServers = False
    max_parallel: MaxParallel = DEFAULT_PARALLEL
    timeout: float = Field(
        default=FLEET_RUN_TIMEOUT,
        ge=0,
        description="Each server's own deadline, seconds, connecting included.",
    )
    max_output: int = Field(
        default=FLEET_MAX_OUTPUT,
        ge=0,
        description="Past this many "
        "bytes of output in all (shared equally by the servers) keep "
        "each server's head and tail; the whole output is saved "
        "(`full_output_path`, an MCP resource) (0: no limit).",
    )
    max_output_per_server: int = Field(
        default=AGENT_MAX_OUTPUT,
        ge=0,
        description="And at most this many bytes per server (0: no limit).",
    )
    on_cancel: OnCancel = "interrupt"


class HealthInput(Input):
    """Read every selected server's health.json in parallel; history and a summary."""

    servers: ServerNames = None
    tag: ServerTag = None
    query: str | None = Field(
        default=None,
        description="A jq expression evaluated on each "
        "server's health document (result in `query`).",
    )
    max_parallel: int = Field(
        default=HEALTH_PARALLEL,
        ge=1,
        description="Servers read at once (one ssh each, over its pane's ControlMaster when up).",
    )


class HealthWaitInput(Input):
    """Poll health until a jq condition holds for all (or any) servers, or time out."""

    until: str = Field(
        min_length=1, description="jq condition per server, e.g. '.status == \"healthy\"'."
    )
    mode: Literal["all", "any"] = Field(
        default="all", description="Wait for all servers, or stop when one meets it."
    )
    servers: ServerNames = None
    tag: ServerTag = None
    timeout: float = Field(
        default=45.0,
        ge=0,
        description="Seconds before giving up "
        "(`met` false); under the common 60 s client request timeout "
        "(call again to wait longer).",
    )
    interval: float = Field(
        default=HEALTH_WAIT_INTERVAL, ge=0.05, description="Seconds between polls."
    )


WAIT = (
    "Wait for the end and return the final report (it may take longer than the "
    "client's request timeout). Default: return at once with the deploy_id and status "
    "`running`; follow with deploy_status."
)


class DeployPlanCheckInput(Input):
    """Check a deploy plan without contacting any server (a dry run): validated plan,
    the order the strategy works in, the items, the files and their checksums."""

    plan: str = Field(
        min_length=1, description="Path of the plan file on the machine running sane."
    )
    servers: list[str] | None = Field(
        default=None,
        description="These servers, in this "
        "order. A deploy never picks servers by default: give "
        "servers, tag or all.",
    )
    tag: ServerTag = None
    all: bool = Field(default=False, description="Every registered server.")
    max_parallel: int | None = Field(
        default=None, ge=1, description="Override the plan's strategy.max_parallel."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Set or override variables of the plan's env."
    )
    allow_outside_sources: bool = Field(
        default=False, description="Let files[].source name files outside the plan's directory."
    )


class DeployInput(DeployPlanCheckInput):
    """Deploy a plan (YAML or JSON file) to the selected servers as a saga: files,
    steps with undo, health gate, rollback by the plan's policy. Starts it and returns
    its deploy_id at once (status `running`): follow it with deploy_status."""

    wait: bool = Field(default=False, description=WAIT)


class DeployListInput(Input):
    """Every deploy recorded here, oldest first, with its status (`running`,
    `interrupted` when its process died: then deploy_resume or deploy_rollback)."""


class DeployResumeInput(Input):
    """Carry on an `interrupted` deploy from its journal (runs the process left behind
    are waited for, not repeated). Returns at once like deploy."""

    deploy_id: str = Field(min_length=1, description="A deploy id, as `deploy` returned it.")
    wait: bool = Field(default=False, description=WAIT)


class DeployRollbackInput(Input):
    """Undo an `interrupted` (or finished) deploy: every applied step's undo, in reverse
    order, per server. Returns at once like deploy."""

    deploy_id: str = Field(min_length=1, description="A deploy id, as `deploy` returned it.")
    wait: bool = Field(default=False, description=WAIT)


class DeployStatusInput(Input):
    """What a deploy's journal says: per server, per step; status `running` while it
    goes on (call again), `interrupted` when the deploying process died (then
    deploy_resume or deploy_rollback)."""

    deploy_id: str = Field(min_length=1, description="A deploy id, as `deploy` returned it.")


class ReadScreenInput(Input):
    """The pane's screen as a person sees it (visible text and cursor), or its last N
    lines: for full-screen programs (vim, less, htop), REPLs and panes sane did not
    start. Reads only."""

    pane: str | None = Field(default=None, description=PANE)
    server: str | None = Field(default=None, description=SERVER)
    lines: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="The last this many lines, scrollback included (default: the visible screen).",
    )


class SendKeysInput(Input):
    """Type into a pane: literal `text`, then named `keys` (C-c, Escape, Enter, Up, F1,
    M-x...), then Enter if `enter`. For full-screen programs and prompts run_command
    does not drive; read the effect with read_screen or wait_for_text. Refuses the
    pane sane itself runs in."""

    pane: str | None = Field(default=None, description=PANE)
    server: str | None = Field(default=None, description=SERVER)
    text: str | None = Field(
        default=None, description="Typed literally, every character as itself."
    )
    keys: list[str] = Field(
        default_factory=list, description="Key names, sent after the text, in order."
    )
    enter: bool = Field(default=False, description="Press Enter at the end.")


class WaitForTextInput(Input):
    """Wait until a regular expression matches the pane's screen (`matched`), or the
    timeout passes (`matched` false, with the screen as it was)."""

    pattern: str = Field(
        min_length=1,
        description="A Python regular expression (multi-line: ^ and $ match at each line).",
    )
    pane: str | None = Field(default=None, description=PANE)
    server: str | None = Field(default=None, description=SERVER)
    lines: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Search the last this many lines, scrollback included (default: the screen).",
    )
    timeout: float = Field(default=30.0, ge=0, description="Seconds to wait.")


class ServerShowInput(Input):
    """One registered server as servers.json stores it."""

    name: str = Field(description="A registered server's name.")


class ServerPaneInput(Input):
    """Where a server's ssh pane is in sane's tmux session (pane, window, session) and
    the tmux command that shows it to a person, whatever the window layout; `select`
    makes it the session's current window and pane. A server without a pane is
    `pane_not_found`."""

    name: str = Field(description="A registered server's name.")
    select: bool = Field(
        default=False,
        description="Make it the current window and pane of sane's session (what a "
        "person attached to the session sees).",
    )


class ServerRemoveInput(Input):
    """Remove a server from the registry (its ssh pane, if any, stays until down)."""

    name: str = Field(description="A registered server's name.")


class ServerImportInput(Input):
    """Import the hosts of an OpenSSH config or an Ansible inventory (INI or YAML) into
    the registry; a server that exists already is skipped (`server_exists`) unless
    `replace`."""

    source: str = Field(min_length=1, description="Path of the file on the machine running sane.")
    format: Literal["ssh-config", "ansible"] = Field(description="What the file is.")
    replace: bool = Field(default=False, description="Overwrite servers that already exist.")


class ConnectInput(Input):
    """Open the orchestrator session and an ssh pane per selected server (all by
    default); live panes are reused, dead ones replaced. One report per server."""

    servers: ServerNames = None
    tag: ServerTag = None
    all: AllServers = False
    accept_new: bool = Field(
        default=False,
        description="Trust a server's host key on first contact (never a changed one).",
    )
    max_parallel: MaxParallel = DEFAULT_PARALLEL


class DownInput(Input):
    """Close the ssh panes of these servers (all server panes by default)."""

    servers: list[str] | None = Field(
        default=None, description="Server names (default: every server pane)."
    )


class FleetPutInput(Input):
    """Copy a local file to a path (absolute, or ~/ for each login's home) on many
    servers in parallel, skipping those that already have the same sha256 (`unchanged`)."""

    local_file: str = Field(
        min_length=1, description="Path of the file on the machine running sane."
    )
    remote_path: str = Field(min_length=1, description="Path on each server.")
    servers: ServerNames = None
    tag: ServerTag = None
    all: AllServers = False
    mode: str | None = Field(
        default=None, pattern=MODE_PATTERN, description='Octal permission bits, e.g. "0644".'
    )
    parents: bool = Field(default=False, description="Create missing parent directories.")
    max_parallel: MaxParallel = DEFAULT_PARALLEL
    timeout: float = Field(
        default=AGENT_TRANSFER_TIMEOUT, ge=0, description="Seconds for each server's copy."
    )


class FleetDetectInput(Input):
    """The platform of every selected server (one probe each, in parallel)."""

    servers: ServerNames = None
    tag: ServerTag = None
    all: AllServers = False
    max_parallel: MaxParallel = DEFAULT_PARALLEL


class HealthSetInput(Input):
    """Write a server's health.json (atomically, on the server)."""

    server: str = Field(description="A registered server's name.")
    status: Literal["healthy", "degraded", "unhealthy"] = Field(description="The status.")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description='Extra fields, as strings (version=1.2 is the string "1.2").',
    )
    json_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Extra fields whose value is JSON text (replicas=3 is the number 3).",
    )
