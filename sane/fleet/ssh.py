"""The user's own ``ssh``, with what sane needs added underneath, and its failures named.

Why the system client: users' keys, agents, ``~/.ssh/config`` (``Host *``, ``Include``,
``Match``, ``ProxyJump``, tokens) and known_hosts work as they do at the prompt, and a
pane running ``ssh`` is something a person can watch and take over.

How sane adds to it without overriding it: every ssh sane starts reads one generated
config file (``-F``) that ``Include``s the user's own config first (``$SANE_SSH_CONFIG``,
else ``~/.ssh/config``), then the system's, then sane's defaults under ``Host *``.
ssh keeps the first value it obtains for an option, so sane's defaults (a connect
timeout, keep-alives so a dead link is noticed within ~15 s, fast key exchange moved to
the front of ssh's own list with OpenSSH's ``^``) only fill what nobody set. ssh passes
the same ``-F`` to every ``ProxyJump`` hop, so the hops get the same treatment.

What sane does impose: ``BatchMode yes`` (never a password or host-key question that
nobody will answer; first in the file, so on every hop), ``StrictHostKeyChecking
accept-new`` on every hop when asked for (``--accept-new``), and its own ControlMaster
per registry entry (``ControlPath`` named from the whole entry, never shared between
entries that differ in user, key or options). An entry's own fields and options are
given on the command line, so they win over every config file. And what of this
process's environment reaches a server: only the locale, as ``SetEnv`` with checked
values (:func:`sent_environment`); every config's ``SendEnv`` (a user's ``SendEnv *``
would send a cloud key to any server that accepts it) is cleared and every other
``SetEnv`` ignored, because sane runs with environments (CI jobs, agents' shells) that a
config written for the prompt did not have in mind.

Entries' ssh options are an allow-list (:data:`ALLOWED_OPTIONS`): options that run a
local program, forward anything, or send local data are refused by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from sane import errors
from sane.fleet.spec import ServerLike
from sane.paths import control_socket_dir

CONNECT_TIMEOUT = 10
SANE_DEFAULTS = (
    ("ConnectTimeout", str(CONNECT_TIMEOUT)),
    ("ServerAliveInterval", "5"),
    ("ServerAliveCountMax", "3"),
    # ~90 ms faster per connection than the post-quantum default here; ``^`` puts them
    # first in ssh's own list, so a server offering only older algorithms still works.
    ("KexAlgorithms", "^curve25519-sha256,curve25519-sha256@libssh.org"),
    # With BatchMode, ssh's default ("ask") refuses an unknown key just as "yes" does,
    # but says only "Host key verification failed."; "yes" makes it name the host (a
    # jump hop's included), which host_key_unknown then names.
    ("StrictHostKeyChecking", "yes"),
)
USER_CONFIG_ENV = "SANE_SSH_CONFIG"
# The only variables of this process's environment that reach a server: the locale (as
# Debian's own ssh_config sends it), and only values shaped like a locale name. Every
# ``SendEnv`` of every config (the user's, the system's, ``SendEnv *`` included) is
# cleared, and these go as ``SetEnv`` with their values checked here; see
# :func:`sent_environment`.
LOCALE_VARIABLES = (
    "LANG",
    "LC_ALL",
    "LC_ADDRESS",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NAME",
    "LC_NUMERIC",
    "LC_PAPER",
    "LC_TELEPHONE",
    "LC_TIME",
)
# language[_territory][.codeset][@modifier] (``C``, ``POSIX``, ``C.UTF-8``, ``de_DE@euro``):
# a token or a key is not a locale name and is not sent.
_LOCALE_VALUE = re.compile(
    r"[A-Za-z]{1,8}(?:_[A-Za-z0-9]{2,3})?(?:\.[A-Za-z0-9-]{1,16})?(?:@[A-Za-z0-9]{1,16})?"
)
# Always sent, first: ssh keeps the first ``SetEnv`` it reads, so with this one in sane's
# config ahead of every ``Include`` no ``SetEnv`` of any other config applies.
SANE_SETENV = ("SANE_SSH", "1")

# ssh options an entry may set (any case), and why each is safe: none of them runs a
# local program, loads a library, forwards a port, an agent or X11, or sends local data.
ALLOWED_OPTIONS: dict[str, str] = {
    "AddressFamily": "which IP version",
    "BindAddress": "local address to connect from",
    "BindInterface": "local interface to connect from",
    "CanonicalDomains": "host name canonicalisation",
    "CanonicalizeFallbackLocal": "host name canonicalisation",
    "CanonicalizeHostname": "host name canonicalisation",
    "CanonicalizeMaxDots": "host name canonicalisation",
    "CanonicalizePermittedCNAMEs": "host name canonicalisation",
    "CASignatureAlgorithms": "algorithm list",
    "CertificateFile": "a certificate file, read like a key file",
    "CheckHostIP": "host key checking",
    "Ciphers": "algorithm list",
    "Compression": "transport compression",
    "ConnectionAttempts": "retries",
    "ConnectTimeout": "timeout",
    "FingerprintHash": "host key display",
    "GlobalKnownHostsFile": "host key checking",
    "HashKnownHosts": "host key checking",
    "HostKeyAlgorithms": "algorithm list",
    "HostKeyAlias": "host key checking",
    "IdentitiesOnly": "which keys are offered",
    "IdentityAgent": "which agent socket is asked for keys",
    "IPQoS": "packet marking",
    "KexAlgorithms": "algorithm list",
    "LogLevel": "how much ssh itself says",
    "MACs": "algorithm list",
    "PreferredAuthentications": "order of authentication methods",
    "ProxyJump": "jump hosts ([user@]host[:port], comma-separated)",
    "PubkeyAcceptedAlgorithms": "algorithm list",
    "PubkeyAcceptedKeyTypes": "algorithm list (old name)",
    "PubkeyAuthentication": "key authentication",
    "RekeyLimit": "rekeying",
    "RequiredRSASize": "minimum RSA key size",
    "RevokedHostKeys": "host key checking",
    "ServerAliveCountMax": "keep-alives",
    "ServerAliveInterval": "keep-alives",
    "StrictHostKeyChecking": "host key checking",
    "TCPKeepAlive": "keep-alives",
    "UpdateHostKeys": "host key checking",
    "UserKnownHostsFile": "host key checking",
    "VerifyHostKeyDNS": "host key checking",
}
_ALLOWED_BY_LOWER = {name.lower(): name for name in ALLOWED_OPTIONS}
# The entry's own fields say these; as options they would fight them.
_FIELD_OPTIONS = {
    "hostname": "--host",
    "port": "--port",
    "user": "--user",
    "identityfile": "--identity",
}
# Options sane sets itself for every connection.
_SANE_OWNED = {"batchmode", "controlmaster", "controlpath", "controlpersist"}
_JUMP = re.compile(
    r"(?:[A-Za-z0-9._][A-Za-z0-9._-]{0,63}@)?"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_VALUE_WORDS = {"stricthostkeychecking": {"yes", "no", "ask", "accept-new", "off"}}


def check_option(key: str, value: str) -> str:
    """The canonical spelling of ssh option ``key`` if an entry may set it to ``value``;
    ValueError naming the option otherwise (the registry's validator, for ``server
    add``, imports and the MCP tools alike)."""
    low = key.lower()
    if low in _FIELD_OPTIONS:
        raise ValueError(f"option {key} is the entry's own field: use {_FIELD_OPTIONS[low]}")
    if low in _SANE_OWNED:
        raise ValueError(
            f"option {key} is set by sane itself (one ControlMaster per entry, never a prompt)"
        )
    if low not in _ALLOWED_BY_LOWER:
        raise ValueError(
            f"option {key} is not allowed (it is not on sane's allow-list of "
            "ssh options: see docs/security.md)"
        )
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"option {key} holds a line break or NUL")
    if not value.strip():
        raise ValueError(f"option {key} has an empty value")
    words = _VALUE_WORDS.get(low)
    if words is not None and value.lower() not in words:
        raise ValueError(f"option {key} must be one of {', '.join(sorted(words))}")
    if low == "proxyjump" and value.lower() != "none":
        for hop in value.split(","):
            if not _JUMP.fullmatch(hop):
                raise ValueError(f"option ProxyJump: {hop!r} is not [user@]host[:port]")
    return _ALLOWED_BY_LOWER[low]


def sane_owned(key: str) -> bool:
    """Whether sane sets ssh option ``key`` itself for every connection."""
    return key.lower() in _SANE_OWNED


def identity_files(server: ServerLike) -> list[str]:
    """The entry's own key files, in the order ssh offers them (none: ssh's choice, the
    agent's keys and the user's config)."""
    return [*([server.identity_file] if server.identity_file else []), *server.extra_identity_files]


def control_dir() -> str:
    """Private directory for ControlMaster sockets (see paths.control_socket_dir)."""
    return control_socket_dir()


def user_config() -> str:
    """The user's own ssh config, as ssh names it (``~`` is the login's home to ssh)."""
    return os.environ.get(USER_CONFIG_ENV) or "~/.ssh/config"


def sent_environment() -> list[tuple[str, str]]:
    """Every variable ssh sends to a server for sane (``SetEnv``), in order: sane's
    constant, then the locale variables of :data:`LOCALE_VARIABLES` this process has,
    where the value looks like a locale name (``C.UTF-8``, ``de_DE@euro``); nothing else
    of this environment (a cloud key, a token) ever reaches a server, whatever
    ``SendEnv`` a config holds."""
    sent = [SANE_SETENV]
    for name in LOCALE_VARIABLES:
        value = os.environ.get(name, "")
        if _LOCALE_VALUE.fullmatch(value):
            sent.append((name, value))
    return sent


def _config_text(accept_new: bool) -> str:
    own = user_config()
    if any(c in own for c in '"\n\r\0'):
        raise errors.InvalidArgument(f"{USER_CONFIG_ENV} holds a quote or line break", path=own)
    lines = [
        "# Written by sane (sane.fleet.ssh): the user's config first, sane's defaults",
        "# last; ssh keeps the first value it obtains for each option.",
        "BatchMode yes",
    ]
    if accept_new:
        lines.append("StrictHostKeyChecking accept-new")
    # First, so every later SetEnv (the user's, the system's) is ignored by ssh.
    lines.append("SetEnv " + " ".join(f"{key}={value}" for key, value in sent_environment()))
    lines += [f'Include "{own}"', "Include /etc/ssh/ssh_config", "Host *"]
    # Last: ``-*`` clears every SendEnv read before it (``SendEnv *`` included), so ssh
    # sends nothing of its environment by name; what crosses is the SetEnv above.
    lines.append("    SendEnv -*")
    lines += [f"    {key} {value}" for key, value in SANE_DEFAULTS]
    return "\n".join(lines) + "\n"


def _digest(*parts: object) -> str:
    import hashlib  # ~4 ms: only when an ssh is about to start anyway

    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def config_file(accept_new: bool = False) -> str:
    """The generated config (see the module's docstring), named by its content so that
    processes with different ``$SANE_SSH_CONFIG`` never rewrite each other's."""
    text = _config_text(accept_new)
    path = os.path.join(control_dir(), f"config-{_digest(text)[:16]}")
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return path
    except OSError:
        pass
    temp = f"{path}.{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path


def entry_key(server: ServerLike) -> str:
    """Names this entry's connection: everything that decides how ssh connects (and
    which config and ``$SANE_HOME`` it comes from), so two entries share a
    ControlMaster only if they are the same entry."""
    from sane.paths import sane_home_dir

    return _digest(
        sane_home_dir(),
        user_config(),
        server.name,
        server.host,
        server.port,
        server.user,
        identity_files(server),
        sorted(server.ssh_options.items()),
    )


def control_path(server: ServerLike) -> str:
    return os.path.join(control_dir(), entry_key(server))


def stderr_log(server: ServerLike) -> str:
    """Where a pane's ssh writes its own messages (why it failed, hops included)."""
    return control_path(server) + ".err"


def ssh_argv(
    server: ServerLike, accept_new: bool = False, master: bool = False, tty: bool = False
) -> list[str]:
    """argv for ``ssh`` to ``server``: a pane's session (``master``) or a side channel."""
    strict = next(
        (v for k, v in server.ssh_options.items() if k.lower() == "stricthostkeychecking"), None
    )
    if accept_new and strict is not None and strict.lower() not in ("accept-new", "no", "off"):
        raise errors.UsageError(
            f"{server.name} sets StrictHostKeyChecking={strict}: --accept-new would override "
            "it (change the entry, or connect without --accept-new)",
            server=server.name,
        )
    for key, value in server.ssh_options.items():
        # The registry checked them, but an entry also comes from a servers.json read
        # the quick way, or from a caller's own object: the allow-list is applied here,
        # last, where options become ssh's argv, whatever the entry came from.
        try:
            check_option(key, value)
        except ValueError as exc:
            raise errors.InvalidArgument(
                f"{server.name}: {exc}", server=server.name, field="ssh_options", option=key
            ) from None
    argv = ["ssh", "-F", config_file(accept_new)]
    if tty:
        argv.append("-tt")
    argv += [
        "-o",
        "BatchMode=yes",
        "-o",
        f"ControlPath={control_path(server)}",
        "-o",
        f"ControlMaster={'auto' if master else 'no'}",
        "-o",
        "ControlPersist=no",
    ]
    if server.port is not None:
        argv += ["-p", str(server.port)]
    keys = identity_files(server)
    for key in keys:
        argv += ["-i", os.path.expanduser(key)]
    if keys:
        argv += ["-o", "IdentitiesOnly=yes"]
    if server.user:
        argv += ["-l", server.user]
    for key, value in server.ssh_options.items():
        argv += ["-o", f"{key}={value}"]
    argv += ["--", server.host]
    return argv


def resolve(server: ServerLike, timeout: float = 10.0) -> dict[str, list[str]]:
    """What ssh itself will use for ``server`` (``ssh -G``: the entry, the user's config
    with its ``Host *``, ``Include``, ``Match`` and tokens, the system's, sane's
    defaults), keyword -> values. ssh refusing the entry is ``invalid_argument`` with
    ssh's own words."""
    import subprocess

    argv = ssh_argv(server)
    argv.insert(1, "-G")
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise errors.ConnectionFailed("ssh is not installed", server=server.name) from exc
    except subprocess.TimeoutExpired:
        raise errors.ConnectTimeout(
            f"{server.name}: ssh -G did not answer in {timeout:g}s", server=server.name
        ) from None
    if proc.returncode != 0:
        reason = "; ".join(meaningful_lines(proc.stderr)) or f"status {proc.returncode}"
        culprits = [
            f"{key}={value}"
            for key, value in server.ssh_options.items()
            if subprocess.run(
                ["ssh", "-G", "-F", "none", "-o", f"{key}={value}", "x"],
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            ).returncode
            != 0
        ]
        where = f" (option {', '.join(culprits)})" if culprits else ""
        raise errors.InvalidArgument(
            f"{server.name}: ssh refuses this entry{where}: {reason}",
            server=server.name,
            options=culprits,
        )
    values: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key:
            values.setdefault(key, []).append(value)
    return values


def entry_warnings(server: ServerLike) -> list[str]:
    """What will keep this entry from connecting, said when it is added: a key file
    that does not exist (the entry's, or every one ssh would try with no agent)."""
    return [
        f"identity file {key} does not exist: connecting will fail with auth_failed until it does"
        for key in identity_files(server)
        if not os.path.exists(os.path.expanduser(key))
    ]


# Substrings of ssh's messages, first match wins, and the error each one means.
_FAILURES: tuple[tuple[str, type[errors.SaneError]], ...] = (
    ("remote host identification has changed", errors.HostKeyMismatch),
    ("host key for", errors.HostKeyMismatch),
    ("host key is known for", errors.HostKeyUnknown),
    ("host key verification failed", errors.HostKeyUnknown),
    ("permission denied", errors.AuthFailed),
    ("too many open files", errors.ResourceLimit),
    # A jump hop that cannot be reached says so in its own line ("ssh: connect to host
    # BASTION port 22: Connection refused"), and the outer ssh then adds its own
    # "kex_exchange_identification: Connection closed": the hop's reason comes first.
    ("connection refused", errors.ConnectionRefused),
    ("could not resolve hostname", errors.HostUnreachable),
    ("no route to host", errors.HostUnreachable),
    ("network is unreachable", errors.HostUnreachable),
    ("kex_exchange_identification", errors.ResourceLimit),
    ("too many authentication failures", errors.AuthFailed),
    ("no matching", errors.ConnectionFailed),
    ("timed out", errors.ConnectTimeout),
)
# ssh's lines that never say why a connection failed.
_NOISE = re.compile(
    r"^(pane is dead|warning: permanently added|connection to .* closed"
    r"|pseudo-terminal will not be allocated|\*\* )",
    re.IGNORECASE,
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def meaningful_lines(text: str) -> list[str]:
    """ssh's own lines that may say why: blank padding and chatter dropped."""
    lines = []
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.strip()
        if line and not _NOISE.match(line):
            lines.append(line)
    return lines


def _hint(cls: type[errors.SaneError], lines: list[str], hop: str | None) -> str:
    text = "\n".join(lines)
    if cls is errors.HostKeyUnknown:
        return (
            f"the host key of {hop or 'the server'} is not in known_hosts: check it, then "
            "retry with --accept-new (it trusts a new key on every hop, never a changed "
            "one)"
        )
    if cls is errors.HostKeyMismatch:
        return (
            "the server's host key changed: if that is expected, remove the old one "
            "(ssh-keygen -R HOST) and connect again"
        )
    if cls is errors.AuthFailed:
        missing = re.search(r"identity file (.+?) not accessible", text, re.IGNORECASE)
        if missing:
            return f"the key file {missing.group(1)} does not exist"
        return (
            "no key was accepted: check the entry's --user and --identity, or load "
            "the key into ssh-agent"
        )
    if cls is errors.ConnectionRefused:
        return "nothing listens there: check the port (the entry's or your ssh config's)"
    if cls is errors.HostUnreachable:
        return "check the host name or address and the network"
    if cls is errors.ConnectTimeout:
        return "no answer: check the address, a firewall, or the jump host"
    if cls is errors.ResourceLimit:
        if "too many open files" in text.lower():
            return "ssh ran out of file descriptors: raise ulimit -n or lower --max-parallel"
        return (
            "the server closed the connection before the ssh handshake: typically its "
            "sshd's MaxStartups (too many connections not yet logged in at once); lower "
            "--max-parallel, or raise MaxStartups on the server (or a jump host)"
        )
    if "no matching" in text.lower():
        return (
            "ssh and the server share no algorithm: allow one of the server's offer with "
            "--ssh-option (e.g. KexAlgorithms=+ALGORITHM)"
        )
    return "see ssh_output for ssh's own words"


def classify(
    server: ServerLike, text: str, *, status: int | None, **details: Any
) -> errors.SaneError:
    """The sane error for ssh's own words about why it could not connect: the stable
    code, ssh's most telling line as the reason, ssh's lines, how ssh exited
    (``exit_status``: 255 when ssh itself failed; ``None`` only when it is not known)
    and a hint. Every failure to connect is built here, so each carries the same
    details whichever path saw it."""
    lines = meaningful_lines(text)
    found: tuple[type[errors.SaneError], str] | None = None
    for needle, cls in _FAILURES:
        line = next((ln for ln in lines if needle in ln.lower()), None)
        if line is not None:
            found = (cls, line)
            break
    if found is not None:
        cls, reason = found
    else:
        cls = errors.ConnectionFailed
        reason = (
            lines[-1]
            if lines
            else (
                f"ssh exited{'' if status is None else f' with status {status}'} and said nothing"
            )
        )
    hop = None
    for line in lines:
        match = re.search(r"host key is known for (\S+) and", line, re.IGNORECASE)
        if match:
            hop, reason = match.group(1), line
            break
    where = server.host if server.port is None else f"{server.host}:{server.port}"
    details["exit_status"] = status
    if hop is not None:
        details["hop"] = hop
    if cls is errors.ResourceLimit:  # which limit, and its value when known here
        if "too many open files" in reason.lower():
            details.update(limit="nofile", value=None, process="ssh")
        else:
            details.update(limit="MaxStartups", value=None, process="sshd (the server's)")
    return cls(
        f"{server.name} ({where}): {reason}",
        server=server.name,
        ssh_output="\n".join(lines)[-2000:],
        hint=_hint(cls, lines, hop),
        **details,
    )


def timeout_error(
    server: ServerLike, timeout: float, text: str = "", **details: Any
) -> errors.SaneError:
    """No answer by the deadline; whatever ssh said meanwhile (a hop it is still trying,
    a warning) goes with it."""
    where = server.host if server.port is None else f"{server.host}:{server.port}"
    return errors.ConnectTimeout(
        f"{server.name} ({where}): no answer within {timeout:g}s",
        server=server.name,
        ssh_output="\n".join(meaningful_lines(text))[-2000:],
        hint=_hint(errors.ConnectTimeout, [], None),
        **details,
    )


def probe_connection(
    server: ServerLike, accept_new: bool = False, timeout: float = CONNECT_TIMEOUT + 5
) -> float:
    """Connect, run ``true``, return the latency in ms; raise the classified error."""
    import subprocess  # here, not at the top: a run on warm panes starts no ssh

    argv = [*ssh_argv(server, accept_new=accept_new), "true"]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise errors.ConnectionFailed("ssh is not installed", server=server.name) from exc
    except subprocess.TimeoutExpired as exc:
        said = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        raise timeout_error(server, timeout, said) from None
    latency = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        raise classify(server, proc.stderr, status=proc.returncode)
    return round(latency, 3)


class RemoteResult(NamedTuple):
    """What a side-channel script did: its exit status, exactly what it printed (None
    when sane's markers never came back: the login's shell did not run the script),
    and its stderr (ssh's own words when ``status`` is 255)."""

    status: int
    stdout: bytes | None
    stderr: str


@contextlib.contextmanager
def _spawning(server: ServerLike) -> Iterator[None]:
    """Around starting an ssh for ``server``: a limit that stops it (out of open files
    for its pipes, out of processes) is that server's ``resource_limit`` naming the
    limit, not an internal error of the whole command."""
    try:
        yield
    except OSError as exc:
        from sane.fleet.limits import spawn_failure

        failure = spawn_failure(exc, server.name)
        if failure is None:
            raise
        raise failure from exc


def run_remote(
    server: ServerLike,
    script: str,
    data: bytes | None = None,
    timeout: float = 30.0,
    limit: int | None = None,
) -> RemoteResult:
    """Run the POSIX ``sh`` ``script`` on ``server`` over a side channel (the pane's
    ControlMaster when it is up) and return exactly what the script printed.

    Why the markers: ssh hands the command to the login's shell, which reads rc files
    first, and those may print (bash sources ``.bashrc`` for ssh commands, and many
    print a banner even when nobody is at the terminal). Mixed into stdout that text
    broke every read of a file's contents. The script runs under ``sh`` (whatever the
    login shell is) between two markers made fresh for this call, on stdout and stderr
    alike; only what lies between them is the script's (run in a subshell, so that its
    own ``exit`` still ends with the closing marker). Raises
    ``subprocess.TimeoutExpired`` past ``timeout``; ``FileNotFoundError`` with no ssh.
    ``limit``: read at most this many bytes of output (a hostile server may send
    endlessly), else ``invalid_argument`` with ``reason`` ``too_large``."""
    import shlex
    import subprocess

    mark = f"sane-{os.urandom(8).hex()}"
    wrapped = (
        f"printf '%s\\n' {mark} && printf '%s\\n' {mark} >&2 && ( {script} ); "
        f"s=$?; printf '\\n%s\\n' {mark}; exit $s"
    )
    with _spawning(server):  # its config file and control directory need descriptors too
        argv = [*ssh_argv(server), f"exec sh -c {shlex.quote(wrapped)}"]
    if limit is None:
        with _spawning(server):
            proc = subprocess.run(
                argv,
                input=data,
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL if data is None else None,
                check=False,
            )
        returncode, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        from sane.bounded import run_capped

        with _spawning(server):
            capped = run_capped(argv, limit + 2 * len(mark) + 8, timeout, stdin=data)
        if capped.timed_out:
            raise subprocess.TimeoutExpired(argv, timeout)
        if capped.too_large or capped.returncode is None:
            raise errors.InvalidArgument(
                f"{server.name} sent more than {limit} bytes",
                server=server.name,
                reason="too_large",
                limit=limit,
            )
        returncode, out, err = capped.returncode, capped.stdout, capped.stderr
    stderr = err.decode("utf-8", "replace")
    if returncode == 255:
        return RemoteResult(255, None, stderr)
    begin, end = f"{mark}\n".encode(), f"\n{mark}\n".encode()
    start = out.find(begin)
    stop = out.rfind(end)
    stdout = out[start + len(begin) : stop] if start >= 0 and start + len(begin) <= stop else None
    _, found, after = stderr.partition(f"{mark}\n")
    return RemoteResult(returncode, stdout, after if found else stderr)


def remote_path(path: str) -> str:
    """``path`` as it may be given for a file on a server: absolute, or ``~/...`` in the
    login's home (``fleet put`` and deploy plans alike); ValueError otherwise."""
    if not path.startswith(("/", "~/")) or "\n" in path or "\0" in path:
        raise ValueError("must be an absolute path on the server (or start with ~/)")
    return path


def remote_home(server: ServerLike, timeout: float = 30.0) -> str:
    """The login's home directory on ``server`` (what ``~/`` means there)."""
    import subprocess

    try:
        result = run_remote(server, 'printf %s "$HOME"', timeout=timeout)
    except subprocess.TimeoutExpired:
        raise timeout_error(server, timeout) from None
    if result.status == 255:
        raise classify(server, result.stderr, status=255)
    home = (result.stdout or b"").decode("utf-8", "replace")
    if result.status != 0 or not home.startswith("/"):
        raise errors.RemoteOperationFailed(
            f"cannot learn the home directory on {server.name}",
            server=server.name,
            output=result.stderr[-300:],
        )
    return home


def path_on(server: ServerLike, path: str, homes: dict[str, str] | None = None) -> str:
    """``path`` on ``server`` with a leading ``~/`` made the login's home (learnt once
    per server when ``homes`` is given to keep it)."""
    if not path.startswith("~/"):
        return path
    home = homes.get(server.name) if homes is not None else None
    if home is None:
        home = remote_home(server)
        if homes is not None:
            homes[server.name] = home
    return home.rstrip("/") + path[1:]


def upload(server: ServerLike, path: str, data: bytes, timeout: float = 600.0) -> None:
    """Write ``data`` to ``path`` on ``server`` over the pane's ControlMaster (a new
    connection if there is none): the fast way for files, ~10x the tty's rate."""
    import shlex
    import subprocess

    try:
        with _spawning(server):
            argv = [*ssh_argv(server), f"cat > {shlex.quote(path)}"]
            proc = subprocess.run(
                argv, input=data, capture_output=True, timeout=timeout, check=False
            )
    except subprocess.TimeoutExpired:
        raise errors.TransferFailed(
            f"{server.name}: upload did not finish in {timeout:g}s", server=server.name
        ) from None
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 255:
            raise classify(server, text, status=255)
        raise errors.TransferFailed(
            f"{server.name}: writing {path} failed: {text.strip()}", server=server.name, path=path
        )
