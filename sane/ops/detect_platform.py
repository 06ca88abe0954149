"""What host is behind a pane: one POSIX-sh probe, one round trip, nothing required.

The probe prints ``key=value`` lines using only what any POSIX system has (uname, id,
command -v, /etc/os-release when present); :func:`parse_probe` turns them into a
:class:`~sane.models.PlatformInfo`. A fact the probe could not see is ``null``: the
parser never fills a gap with a guess. The parser is pure, so recorded probe outputs
of other systems (macOS, Alpine, FreeBSD, containers) are its unit tests.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable

from sane import errors
from sane.models import DistroInfo, LocaleInfo, PlatformInfo, ShellInfo
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions

# Seconds the probe may take unless told (the library, detect-platform and its tool).
PROBE_TIMEOUT = 30.0
PACKAGE_MANAGERS = (
    "apt-get",
    "dnf",
    "yum",
    "apk",
    "pacman",
    "zypper",
    "brew",
    "pkg",
    "port",
    "nix-env",
    "emerge",
    "xbps-install",
)
TOOLS = (
    "python3",
    "jq",
    "systemctl",
    "docker",
    "podman",
    "base64",
    "sha256sum",
    "shasum",
    "curl",
    "wget",
    "git",
    "tmux",
    "sudo",
    "openssl",
    "ssh",
    "rsync",
    "perl",
)

# The probe runs as ``sh -c PROBE`` (a line both POSIX shells and fish parse), so the
# shell it describes is its parent, ``$PPID``: the pane's shell, where sane's runner
# lives. Versions come from ``--version`` of the shells that have one.
_VERSIONED = "bash|zsh|ksh|ksh93|mksh|fish|tcsh|yash"
PROBE = f"""\
__dp() {{ printf '%s=%s\\n' "$1" "$2"; }}
__dp_p=$PPID
if [ -r "/proc/$__dp_p/cmdline" ]; then
  __dp_x=$(readlink "/proc/$__dp_p/exe" 2>/dev/null); __dp run_shell_exe "$__dp_x"
  __dp run_shell_argv "$(tr '\\000' ' ' < "/proc/$__dp_p/cmdline" 2>/dev/null | cut -c1-200)"
else
  __dp_x=$(ps -o comm= -p "$__dp_p" 2>/dev/null); __dp run_shell_argv "$__dp_x"; __dp_x=${{__dp_x#-}}
fi
case ${{__dp_x##*/}} in {_VERSIONED})
  __dp run_shell_version "$("$__dp_x" --version 2>/dev/null </dev/null | head -n 1)";; esac
__dp os "$(uname -s 2>/dev/null)"; __dp kernel "$(uname -r 2>/dev/null)"
__dp arch "$(uname -m 2>/dev/null)"
__dp hostname "$(hostname 2>/dev/null || uname -n 2>/dev/null)"
__dp user "$(id -un 2>/dev/null)"; __dp uid "$(id -u 2>/dev/null)"; __dp home "${{HOME-}}"
__dp_u=$(id -un 2>/dev/null)
__dp_s=$(getent passwd "$__dp_u" 2>/dev/null | cut -d: -f7)
[ -n "$__dp_s" ] || __dp_s=$(dscl . -read "/Users/$__dp_u" UserShell 2>/dev/null | sed 's/^UserShell: //')
[ -n "$__dp_s" ] || __dp_s=$(awk -F: -v u="$__dp_u" '$1 == u {{ print $7 }}' /etc/passwd 2>/dev/null)
__dp shell "$__dp_s"
case ${{__dp_s##*/}} in {_VERSIONED})
  __dp shell_version "$("$__dp_s" --version 2>/dev/null </dev/null | head -n 1)";; esac
if [ -r /etc/os-release ]; then
  while IFS= read -r __dp_l || [ -n "$__dp_l" ]; do
    case $__dp_l in [A-Z_]*=*) __dp "osr.${{__dp_l%%=*}}" "${{__dp_l#*=}}";; esac
  done < /etc/os-release
fi
if command -v sw_vers >/dev/null 2>&1; then
  __dp mac_name "$(sw_vers -productName 2>/dev/null)"
  __dp mac_version "$(sw_vers -productVersion 2>/dev/null)"
fi
for __dp_t in {" ".join(PACKAGE_MANAGERS)}; do
  command -v "$__dp_t" >/dev/null 2>&1 && __dp pm "$__dp_t"; done
for __dp_t in {" ".join(TOOLS)}; do
  command -v "$__dp_t" >/dev/null 2>&1 && __dp tool "$__dp_t"; done
__dp coreutils "$(ls --version 2>&1 </dev/null | sed -n 1,3p | tr '\\n' ' ' | cut -c1-300)"
[ -r /proc/1/comm ] && __dp init "$(cat /proc/1/comm 2>/dev/null)"
[ -d /run/systemd/system ] && __dp hint systemd_run
[ -d /run/openrc ] && __dp hint openrc_run
[ -f /.dockerenv ] && __dp hint dockerenv
[ -f /run/.containerenv ] && __dp hint containerenv
[ -r /proc/1/cgroup ] && __dp cgroup "$(tr '\\n' ' ' < /proc/1/cgroup 2>/dev/null | cut -c1-400)"
[ -n "${{container-}}" ] && __dp container_env "$container"
if command -v systemd-detect-virt >/dev/null 2>&1; then
  __dp virt "$(systemd-detect-virt -v 2>/dev/null)"
  __dp virt_container "$(systemd-detect-virt -c 2>/dev/null)"
fi
[ -r /sys/class/dmi/id/sys_vendor ] && __dp dmi_vendor "$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null)"
[ -r /sys/class/dmi/id/product_name ] && __dp dmi_product "$(cat /sys/class/dmi/id/product_name 2>/dev/null)"
__dp lang "${{LANG-}}"; __dp lc_all "${{LC_ALL-}}"
__dp charmap "$(locale charmap 2>/dev/null)"
if command -v sudo >/dev/null 2>&1; then
  if sudo -n true >/dev/null 2>&1 </dev/null; then __dp sudo yes; else __dp sudo no; fi
fi
__dp end 1
"""
# The line typed: a restricted shell (rbash) refuses the redirection, so sane never
# starts an unrestricted sh there; it says so instead of a result full of nulls.
PROBE_COMMAND = (
    f"true >/dev/null && sh -c {shlex.quote(PROBE)} sane-probe || printf '%s\\n' restricted=1 end=1"
)

_VM_VENDORS = {
    "qemu": "qemu",
    "kvm": "kvm",
    "vmware": "vmware",
    "innotek": "virtualbox",
    "virtualbox": "virtualbox",
    "xen": "xen",
    "microsoft corporation": "microsoft",
    "amazon ec2": "amazon",
    "google": "google",
    "parallels": "parallels",
}


def _unquote(value: str) -> str:
    if value[:1] in ("'", '"'):
        try:
            parts = shlex.split(value)
        except ValueError:
            return value.strip("'\"")
        return parts[0] if parts else ""
    return value


def parse_probe(text: str) -> PlatformInfo:
    """Turn the probe's ``key=value`` lines into facts; absent or empty means null."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {"pm": [], "tool": [], "hint": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key in multi:
            multi[key].append(value)
        else:
            single[key] = value
    if "end" not in single:
        raise errors.TransferFailed("the platform probe did not finish", output=text[-2000:])
    if single.get("restricted") == "1":
        raise errors.ShellRestricted(
            "the shell in the pane is restricted: it refuses output redirections and "
            "commands named with a slash, so the platform probe cannot run there",
            shell=None,
        )

    def get(key: str) -> str | None:
        value = single.get(key, "")
        return _unquote(value) if key.startswith("osr.") and value else value or None

    os_name = get("os")
    distro = _distro(get, os_name)
    hints = set(multi["hint"])
    init_process = get("init")
    shell_path = get("shell")
    tools = set(multi["tool"])
    sudo = single.get("sudo")
    uid = get("uid")
    return PlatformInfo(
        os=os_name,
        kernel_release=get("kernel"),
        arch=get("arch"),
        distro=distro,
        hostname=get("hostname"),
        user=get("user"),
        uid=int(uid) if uid and uid.isdigit() else None,
        home=get("home"),
        shell=_running_shell(single),
        login_shell=ShellInfo(
            path=shell_path,
            name=shell_path.rsplit("/", 1)[-1] if shell_path else None,
            version=get("shell_version"),
        ),
        package_managers=multi["pm"],
        init_system=_init_system(os_name, init_process, hints),
        init_process=init_process,
        container=_container(single, hints),
        virtualization=_virtualization(single),
        tools={tool: tool in tools for tool in TOOLS},
        coreutils=_coreutils(single.get("coreutils", "")),
        locale=LocaleInfo(lang=get("lang"), lc_all=get("lc_all"), charmap=get("charmap")),
        sudo_without_password=None if sudo is None else sudo == "yes",
        pane=None,
        duration_ms=None,
    )


def _running_shell(single: dict[str, str]) -> ShellInfo:
    """The pane's own shell from its executable (``/proc/PID/exe``) and argv.

    The executable names the shell (``sh`` started as ``/bin/sh`` is dash, say), except
    busybox, which is every applet: there argv says which (``-ash``, ``busybox ash``).
    Without /proc only ``ps``'s command name is known.
    """
    exe = single.get("run_shell_exe", "")
    argv = single.get("run_shell_argv", "").split()
    words = [w.rsplit("/", 1)[-1].lstrip("-") for w in argv]
    name = exe.rsplit("/", 1)[-1] if exe else (words[0] if words else "")
    if name == "busybox" and words:
        name = words[1] if words[0] == "busybox" and len(words) > 1 else words[0]
    path = exe or (argv[0].lstrip("-") if argv and "/" in argv[0] else "")
    return ShellInfo(
        path=path or None, name=name or None, version=single.get("run_shell_version") or None
    )


def _distro(get: Callable[[str], str | None], os_name: str | None) -> DistroInfo | None:
    if get("osr.ID") is not None or get("osr.NAME") is not None:
        return DistroInfo(
            id=get("osr.ID"),
            version_id=get("osr.VERSION_ID"),
            name=get("osr.PRETTY_NAME") or get("osr.NAME"),
        )
    if get("mac_name") is not None or os_name == "Darwin":
        return DistroInfo(id="macos", version_id=get("mac_version"), name=get("mac_name"))
    if os_name is not None and (os_name.endswith("BSD") or os_name == "DragonFly"):
        return DistroInfo(id=os_name.lower(), version_id=get("kernel"), name=os_name)
    return None


def _init_system(os_name: str | None, init_process: str | None, hints: set[str]) -> str | None:
    if os_name == "Darwin":
        return "launchd"
    if init_process == "systemd" or "systemd_run" in hints:
        return "systemd"
    if "openrc_run" in hints or init_process == "openrc-init":
        return "openrc"
    known = {
        "runit": "runit",
        "s6-svscan": "s6",
        "tini": "tini",
        "dumb-init": "dumb-init",
        "launchd": "launchd",
    }
    return known.get(init_process or "")


# What each implementation's ``ls --version`` prints (busybox: the usage, naming itself
# on its second line); the first that matches wins (uutils also says "coreutils").
_COREUTILS = (
    ("uutils coreutils", "uutils"),
    ("GNU coreutils", "gnu"),
    ("BusyBox", "busybox"),
    ("toybox", "toybox"),
)


def _coreutils(version: str) -> str | None:
    return next((name for needle, name in _COREUTILS if needle in version), None)


def _container(single: dict[str, str], hints: set[str]) -> str | None:
    detected = single.get("virt_container", "")
    if detected and detected != "none":
        return detected
    env = single.get("container_env", "")
    cgroup = single.get("cgroup", "")
    if "kubepods" in cgroup:
        return "kubernetes"
    if "dockerenv" in hints or "docker" in cgroup:
        return "docker"
    if "containerenv" in hints or env == "podman":
        return "podman"
    if env:
        return env
    if "lxc" in cgroup:
        return "lxc"
    return None


def _virtualization(single: dict[str, str]) -> str | None:
    virt = single.get("virt", "")
    if virt and virt != "none":
        return virt
    vendor = (single.get("dmi_vendor", "") + " " + single.get("dmi_product", "")).lower()
    for needle, name in _VM_VENDORS.items():
        if needle in vendor:
            return name
    return None


def detect_platform(
    ctx: Context,
    pane: str | None = None,
    timeout: float = PROBE_TIMEOUT,
    clear_input: bool = False,
) -> PlatformInfo:
    started = time.perf_counter()
    result = run_command(
        ctx,
        PROBE_COMMAND,
        pane=pane,
        options=RunOptions(
            timeout=timeout,
            interrupt_on_timeout=True,
            max_output=None,
            quiet_period=None,
            clear_input=clear_input,
        ),
    )
    if result["status"] != "completed":
        raise errors.TransferFailed(
            f"the platform probe did not complete (status {result['status']})",
            status=result["status"],
        )
    try:
        info = parse_probe(result["output"])
    except errors.ShellRestricted as exc:
        # Named by the pane's program (a local pane's; "ssh" says only where it is).
        name = ctx.pane_state(result["pane"]).current_command.lstrip("-") or None
        raise errors.ShellRestricted(
            exc.message.replace("the shell", name or "the shell", 1),
            shell=name,
            pane=result["pane"],
        ) from None
    info["pane"] = result["pane"]
    info["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return info
