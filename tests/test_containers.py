"""sane on a fleet of real containers (testcontainers): Debian + OpenSSH and busybox +
Dropbear servers, each with its own hostname, host key, login shell and home.

The expected value of a run is what the container itself prints for the same command,
asked out of band (``podman exec``/``docker exec``, not over ssh): sane must return
exactly that, through an ssh pane into the container's login shell.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sane.fleet.panes import pane_for_server
from sane.fleet.registry import Registry, Server
from sane.ops.context import Context
from sane.ops.create_file import create_file
from sane.ops.detect_platform import detect_platform
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.ops.run.resume import run_input, run_interrupt
from sane.testing import retry_until
from sane.testing.containers import ContainerFleet
from sane.testing.fleet import registry_entries
from sane.testing.pytest_plugin import _containers_unavailable

from .conftest import cli, output_bytes, sane_json
from .test_run_command import HAZARDS

DEBIAN = ["deb1", "deb2", "deb3"]
BUSYBOX = ["bb1", "bb2", "bb3"]


def register(home: Path, fleet: ContainerFleet, names: list[str] | None = None) -> list[Server]:
    """The containers (all, or ``names``) registered, each tagged with its image."""
    registry = Registry(home)
    servers = [
        entry.model_copy(update={"tags": [s.image]})
        for entry, s in zip(registry_entries(fleet), fleet.servers, strict=True)
        if names is None or s.name in names
    ]
    for server in servers:
        registry.add(server, replace=True)
    return servers


def in_container(fleet: ContainerFleet, name: str, command: str) -> bytes:
    """What the container's own /bin/sh prints for ``command`` (stdout and stderr)."""
    proc = fleet.engine.run(
        "exec", fleet[name].container_id, "/bin/sh", "-c", f'({command}) 2>&1; echo "exit=$?"'
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def ssh(fleet: ContainerFleet, name: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fleet.ssh_argv(name, command),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


# ----------------------------------------------------------------- the fleet itself


def test_each_container_is_its_own_server(container_fleet: ContainerFleet) -> None:
    """Own hostname, login shell, OS and home; reached over ssh with its host key checked
    (the fleet's ssh_config says StrictHostKeyChecking yes)."""
    shells = {"debian": "/bin/bash", "busybox": "/bin/ash"}
    systems = {"debian": "ID=debian", "busybox": "ID=busybox"}
    marker = f"home-of-{os.getpid()}"
    for s in container_fleet.servers:
        proc = ssh(
            container_fleet,
            s.name,
            f"hostname; awk -F: '$1 == \"root\" {{ print $7 }}' /etc/passwd; "
            f"grep ^ID= /etc/os-release; cd && pwd && echo {s.name} > {marker}",
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n") == [s.name, shells[s.image], systems[s.image], "/root", ""]
    for s in container_fleet.servers:  # each /root holds only its own marker
        assert (
            in_container(container_fleet, s.name, f"cat /root/{marker}; rm /root/{marker}")
            == f"{s.name}\nexit=0\n".encode()
        )
    keys = [s.host_key_pub for s in container_fleet.servers]
    assert len(set(keys)) == len(keys) and all(k.startswith("ssh-ed25519 ") for k in keys)


def test_a_wrong_host_key_is_refused(container_fleet: ContainerFleet, tmp_path: Path) -> None:
    """known_hosts is written from each container's real key: give deb1 the key of bb1
    and ssh must refuse deb1 (host key checking is on, not accept-anything)."""
    deb1, bb1 = container_fleet["deb1"], container_fleet["bb1"]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{deb1.known_hosts_name} {bb1.host_key_pub}\n")
    proc = subprocess.run(
        [*container_fleet.ssh_argv("deb1"), "-o", f"UserKnownHostsFile={wrong}", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr


def _descendants(pids: set[int]) -> set[int]:
    found = set(pids)
    frontier = list(pids)
    while frontier:
        pid = frontier.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def assert_listens_on_loopback_only(fleet: ContainerFleet) -> None:
    """Every TCP listener of the fleet's processes (the containers' process trees, their
    conmon, the port forwarders, the podman service) is bound to 127.0.0.1 only, and each
    server's port is listened on at 127.0.0.1 and nowhere else."""
    engine = fleet.engine
    ours: set[int] = set()
    for s in fleet.servers:
        pid, conmon = engine.must(
            "inspect", "--format", "{{.State.Pid}} {{.State.ConmonPid}}", s.container_id
        ).split()
        ours |= {int(pid), int(conmon)}
    if fleet.service.pid is not None:
        ours.add(fleet.service.pid)
    ours = _descendants(ours)
    listing = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
    forwarders = {"rootlessport", "rootlessport-child", "slirp4netns", "conmon", "podman"}
    checked = []
    ports = {s.port for s in fleet.servers}
    for line in listing.stdout.splitlines():
        fields = line.split()
        local = fields[3]
        address, _, port = local.rpartition(":")
        owners = {(name, int(pid)) for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line)}
        if any(pid in ours or name in forwarders for name, pid in owners) or int(port) in ports:
            checked.append((address, int(port)))
    assert {port for _, port in checked} >= ports
    assert all(address == "127.0.0.1" for address, _ in checked), checked


def test_nothing_listens_beyond_loopback(container_fleet: ContainerFleet) -> None:
    """The session's fleet: each container's own network namespace, port 22 published on
    127.0.0.1."""
    assert_listens_on_loopback_only(container_fleet)


def test_host_network_fleet_listens_on_loopback_only(make_container_fleet: Any) -> None:
    """network="host": the containers share the host's network and their sshd binds
    127.0.0.1:PORT (OpenSSH and Dropbear both); reached over ssh with the host key checked."""
    fleet = make_container_fleet(images=["debian", "busybox"], network="host")
    assert_listens_on_loopback_only(fleet)
    for s in fleet.servers:
        proc = ssh(fleet, s.name, "hostname")
        assert (proc.returncode, proc.stdout) == (0, f"{s.name}\n"), proc.stderr


# ----------------------------------------------------------------- sane on the Debian servers

RUN_CASES = [
    "echo hello",
    "printf 'no newline'",
    "printf 'a\\tb\\n\\n\\nc\\n'",
    "printf 'caf\\303\\251 \\342\\202\\254 \\360\\237\\230\\200\\n'",
    "echo out; echo err >&2; (exit 3)",
    "seq 1 3000",
    "head -c 3000 /dev/zero | tr '\\0' x; echo",
    "printf 'carriage\\rreturn\\n'",
    "true",
    "(exit 255)",
    "cat /etc/hostname 2>/dev/null || hostname",
]


def _result_bytes(result: Any) -> bytes:
    return output_bytes(result) + f"exit={result['exit_code']}\n".encode()


def login_reference(fleet: ContainerFleet, name: str, command: str) -> bytes:
    """What the server's login shell prints for ``command`` run with ``-c`` in the
    container (out of band: the engine's exec, not ssh), stdout then stderr, and its
    exit status as ``exit=N``."""
    server = fleet[name]
    proc = fleet.engine.run("exec", server.container_id, server.login_shell, "-c", command)
    return proc.stdout + proc.stderr + f"exit={proc.returncode}\n".encode()


@pytest.mark.parametrize("name", ["deb1", "trixie1", "bb1"])
def test_runs_are_exact(
    sane_ctx: Context, make_container_fleet: Any, container_fleet: ContainerFleet, name: str
) -> None:
    """Each case's output bytes and exit code (these and the quoting hazards of the
    local shell matrix), through an ssh pane into the login shell (bash on Debian 12
    and 13, ash on busybox), equal what that shell prints in the container itself."""
    fleet = container_fleet
    if name == "trixie1":
        fleet = make_container_fleet(images=["debian-trixie"])
    register(sane_ctx.home, fleet, [name])
    pane = pane_for_server(sane_ctx, name)
    for command in RUN_CASES + HAZARDS:
        result = run_command(
            sane_ctx,
            command,
            pane=pane,
            options=RunOptions(timeout=30, max_output=None, keep_ansi=True),
        )
        assert result["status"] == "completed", (command, result)
        got = _result_bytes(result)
        want = login_reference(fleet, name, command)
        if command.startswith("echo out"):  # one terminal: the order of two streams
            assert sorted(got.split(b"\n")) == sorted(want.split(b"\n")), command
        else:
            assert got == want, command


@pytest.mark.parametrize("name", ["deb3", "bb3"])
def test_prompt_and_interrupt_through_the_servers_own_sshd(
    sane_ctx: Context, container_fleet: ContainerFleet, name: str
) -> None:
    """A `read` in the login shell (bash behind OpenSSH, busybox ash behind Dropbear) is
    waiting_input from the remote kernel's view (busybox ash polls the terminal), the
    answer completes it; a long command interrupted ends interrupted, 130; the pane
    runs the next command."""
    register(sane_ctx.home, container_fleet, [name])
    pane = pane_for_server(sane_ctx, name)
    asked = run_command(
        sane_ctx,
        "printf 'name? '; read x; echo \"got $x\"",
        pane=pane,
        options=RunOptions(timeout=30),
    )
    assert (asked["status"], asked["waiting_reason"]) == ("waiting_input", "tty_read"), asked
    answered = run_input(sane_ctx, asked["run_id"], "ada")
    assert (answered["status"], answered["exit_code"]) == ("completed", 0)
    assert asked["output"] + answered["output"] == "name? ada\ngot ada\n"
    long = run_command(
        sane_ctx, "echo start; sleep 60; echo never", pane=pane, options=RunOptions(timeout=0.5)
    )
    assert long["status"] == "running"
    stopped = run_interrupt(sane_ctx, long["run_id"])
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 130), stopped
    assert "never" not in long["output"] + stopped["output"]
    after = run_command(sane_ctx, "echo next", pane=pane, options=RunOptions(timeout=30))
    assert (after["status"], after["output"]) == ("completed", "next\n")


@pytest.mark.parametrize("name", ["deb2", "bb2"])
def test_create_file_is_byte_exact(
    sane_ctx: Context, container_fleet: ContainerFleet, name: str
) -> None:
    register(sane_ctx.home, container_fleet, [name])
    pane = pane_for_server(sane_ctx, name)
    content = bytes(range(256)) * 40 + "\n ünïcode 'quotes' $HOME `x`\n".encode()
    path = f"/root/created-{os.getpid()}.bin"
    try:
        create_file(sane_ctx, path, content, pane=pane)
        got = in_container(container_fleet, name, f"sha256sum {path} | cut -d' ' -f1")
        assert got == f"{hashlib.sha256(content).hexdigest()}\nexit=0\n".encode()
    finally:
        in_container(container_fleet, name, f"rm -f {path}")


def test_detect_platform_reports_the_debian_container(
    sane_ctx: Context, container_fleet: ContainerFleet
) -> None:
    register(sane_ctx.home, container_fleet, ["deb1"])
    info = detect_platform(sane_ctx, pane=pane_for_server(sane_ctx, "deb1"))
    release = in_container(container_fleet, "deb1", ". /etc/os-release; echo $VERSION_ID")
    assert info["hostname"] == "deb1" and info["user"] == "root" and info["home"] == "/root"
    assert info["distro"] is not None and info["distro"]["id"] == "debian"
    assert f"{info['distro']['version_id']}\nexit=0\n".encode() == release
    assert info["shell"]["name"] == "bash" and info["container"] == container_fleet.engine.kind
    assert info["login_shell"]["path"] == "/bin/bash"
    assert info["tools"]["python3"] is False and info["tools"]["sha256sum"] is True
    assert info["tools"]["jq"] is False and info["package_managers"] == ["apt-get"]
    assert info["coreutils"] == "gnu"


# ----------------------------------------------------------------- busybox ash behind Dropbear


def test_detect_platform_reports_the_busybox_container(
    sane_ctx: Context, container_fleet: ContainerFleet
) -> None:
    """Its own OS (os-release ID busybox), login shell (ash), tools: busybox's applets
    (sha256sum, base64), no Python, no package manager."""
    register(sane_ctx.home, container_fleet, ["bb1"])
    info = detect_platform(sane_ctx, pane=pane_for_server(sane_ctx, "bb1"))
    assert info["hostname"] == "bb1" and info["user"] == "root" and info["home"] == "/root"
    assert info["distro"] is not None and info["distro"]["id"] == "busybox"
    # the pane's shell is busybox's ash applet (its executable is /bin/busybox), the
    # password database's is /bin/ash; busybox ash has no version variable
    assert info["shell"] == {"path": "/bin/busybox", "name": "ash", "version": None}
    assert info["login_shell"] == {"path": "/bin/ash", "name": "ash", "version": None}
    assert info["tools"]["python3"] is False and info["tools"]["perl"] is False
    assert info["tools"]["sha256sum"] is True and info["tools"]["base64"] is True
    assert info["package_managers"] == [] and info["container"] == container_fleet.engine.kind
    assert info["coreutils"] == "busybox"
    # and those tools are busybox's own applets (out of band)
    # (busybox readlink takes one path)
    assert (
        in_container(
            container_fleet, "bb1", "for t in /usr/bin/sha256sum /bin/ls; do readlink $t; done"
        )
        == b"/bin/busybox\n/bin/busybox\nexit=0\n"
    )


# ----------------------------------------------------------------- the mixed fleet, as a user


def test_mixed_fleet_up_run_detect(
    cli_env: dict[str, str], sane_home: Path, container_fleet: ContainerFleet
) -> None:
    """3 Debian + 3 busybox containers: `sane up` connects all six with host keys checked,
    `sane fleet run 'uname -a; echo $0'` is exact on each, `sane fleet detect` tells the
    two systems apart (OS, shell, coreutils; no Python on either)."""
    register(sane_home, container_fleet)
    code, up = sane_json(cli_env, "up", "--all")
    assert code == 0 and up["ok"], up
    code, ran = sane_json(cli_env, "fleet", "run", "--all", "--timeout", "60", "uname -a; echo $0")
    assert code == 0 and ran["status"] == "completed", ran
    by_name = {r["server"]: r for r in ran["results"]}
    for s in container_fleet.servers:
        uname = in_container(container_fleet, s.name, "uname -a").removesuffix(b"exit=0\n")
        login = "-" + s.login_shell.rsplit("/", 1)[-1]  # sshd/dropbear start a login shell
        assert by_name[s.name]["output"] == uname.decode() + login + "\n", s.name
        assert by_name[s.name]["exit_code"] == 0
    code, detected = sane_json(cli_env, "fleet", "detect", "--all")
    assert code == 0, detected
    seen = {
        r["server"]: (r["distro"]["id"], r["shell"]["name"], r["coreutils"], r["tools"]["python3"])
        for r in detected["results"]
    }
    assert seen == {
        s.name: ("debian", "bash", "gnu", False)
        if s.image == "debian"
        else ("busybox", "ash", "busybox", False)
        for s in container_fleet.servers
    }


def test_sane_up_checks_each_containers_host_key(
    cli_env: dict[str, str], sane_home: Path, container_fleet: ContainerFleet, tmp_path: Path
) -> None:
    """`sane up` checks the host keys of OpenSSH and Dropbear alike: deb1 with bb3's key
    in its known_hosts is refused as a mismatch, bb2 with no known key as unknown (no
    --accept-new), bb1 with its real key connects."""
    fleet = container_fleet
    swapped, empty = tmp_path / "swapped", tmp_path / "empty"
    swapped.write_text(f"{fleet['deb1'].known_hosts_name} {fleet['bb3'].host_key_pub}\n")
    empty.write_text("")
    registry = Registry(sane_home)
    for name, known in (("deb1", swapped), ("bb2", empty), ("bb1", fleet.known_hosts)):
        s = fleet[name]
        registry.add(
            Server(
                name=name,
                host=s.host,
                port=s.port,
                user="root",
                identity_file=str(fleet.client_key),
                ssh_options={"UserKnownHostsFile": str(known)},
            ),
            replace=True,
        )
    code, up = sane_json(cli_env, "up", "--all")
    assert code == 5, up
    errors = {r["server"]: r["error"] and r["error"]["code"] for r in up["servers"]}
    assert errors == {"deb1": "host_key_mismatch", "bb2": "host_key_unknown", "bb1": None}
    assert empty.read_text() == ""  # nothing trusted on the way


def test_mixed_fleet_deploy_rolls_back_only_the_failing_busybox_host(
    sane_ctx: Context, container_fleet: ContainerFleet
) -> None:
    """The demo app's plan on 3 Debian + 3 busybox servers: v1 everywhere, then v2 with
    bb2's migration failing, all six at once: bb2 alone is rolled back to v1 (health read from each
    server's own health.json), the five others run v2."""
    from sane.demo.scenario import plan_path
    from sane.deploy import api
    from sane.fleet.health import check

    servers = register(sane_ctx.home, container_fleet)
    names = [s.name for s in servers]
    try:
        first = api.deploy(sane_ctx, str(plan_path()), servers, env={"VERSION": "1.0.0"})
        assert first["status"] == "completed", first
        in_container(container_fleet, "bb2", "echo 'database locked' > /root/app/FAULT")
        # all six at once (the plan's max_parallel is 5): with the sixth in a second
        # wave, bb2's failure would stop it from starting (max_fail_percentage 0)
        second = api.deploy(
            sane_ctx, str(plan_path()), servers, env={"VERSION": "2.0.0"}, max_parallel=len(servers)
        )
        states = {s["server"]: s["state"] for s in second["servers"]}
        assert states == {name: "rolled_back" if name == "bb2" else "deployed" for name in names}, (
            second
        )
        health = check(sane_ctx.home, servers)
        versions = {
            r["server"]: (r["status"], (r["data"] or {}).get("version")) for r in health["servers"]
        }
        assert versions == {
            name: ("healthy", "1.0.0" if name == "bb2" else "2.0.0") for name in names
        }
        for name in names:  # the servers themselves say the same, out of band
            current = in_container(container_fleet, name, "readlink /root/app/current")
            want = "1.0.0" if name == "bb2" else "2.0.0"
            assert current == f"releases/{want}\nexit=0\n".encode(), name
    finally:
        for name in names:
            in_container(container_fleet, name, "rm -rf /root/app /root/.sane")


# ----------------------------------------------------------------- no engine, a crash

CRASHER = """
import os, signal, sys
from sane.testing import retry_until
from sane.testing.containers import ContainerFleet
from sane.testing.pytest_plugin import _containers_unavailable
fleet = ContainerFleet(1, image="busybox")
print(fleet.servers[0].container_id, fleet.service.pid or 0, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit: a crashed test run
"""


def test_a_crashed_owner_leaves_nothing_for_long(container_service: Any, tmp_path: Path) -> None:
    """A process that starts a fleet and is killed: its podman service dies with it
    (PR_SET_PDEATHSIG), and the sweeps remove its container (owner label) and its
    temporary directories (the fleet's keys, the service's socket: owner file)."""
    from sane.testing.engine import OWNER_LABEL, labelled, sweep, sweep_dirs
    from sane.testing.images import IMAGES, reference

    if not container_service.engine.image_exists(reference(IMAGES["busybox"])):
        _containers_unavailable("the busybox image is not built: run containers/build-images")
    private = tmp_path / "tmp"
    private.mkdir()
    foreign = private / "sane-containers-foreign"  # no owner file: never swept
    foreign.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TMPDIR": str(private)},
    )
    assert proc.returncode == -9, proc.stderr
    container_id, service_pid = proc.stdout.split()
    engine = container_service.engine
    # The crash left its container; a test run sharing the engine may sweep it before this
    # one does (every fleet's start sweeps dead owners' containers): after a sweep it is gone.
    if int(service_pid):
        retry_until(
            lambda: (
                not Path(f"/proc/{service_pid}").exists()
                or Path(f"/proc/{service_pid}/stat").read_text().split(") ")[1][0] == "Z"
            ),
            timeout=30,
            message="the crashed run's podman service is still running",
        )
    left = sorted(p.name.rsplit("-", 1)[0] for p in private.iterdir() if p != foreign)
    assert left == (
        ["sane-containers", "sane-podman"] if int(service_pid) else ["sane-containers"]
    )  # the crashed fleet's files
    sweep(engine)
    assert container_id not in labelled(engine, OWNER_LABEL)
    assert len(sweep_dirs(private)) == len(left)
    assert list(private.iterdir()) == [foreign]


def test_a_build_waits_for_another_and_a_rebuild_leaves_no_layers(container_service: Any) -> None:
    """Two builds of one image do not run at once (several checkouts bootstrapping
    together): the second waits on the lock, says so, then builds. A rebuild removes the
    image it replaced: no untagged image is left in the store. (A throw-away image of the
    busybox recipe, so the session's fleet keeps its own.)"""
    import threading

    from sane.testing.engine import state_dir
    from sane.testing.images import ImageSpec, build, reference

    engine = container_service.engine
    spec = ImageSpec(f"locktest{os.getpid()}", "busybox", None, "/bin/ash", "lt")
    ref = reference(spec)
    heard: list[str] = []
    results: list[tuple[str, bool]] = []
    state_dir().mkdir(parents=True, exist_ok=True)
    try:
        with open(state_dir() / f"build-{spec.name}.lock", "a") as lock:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            worker = threading.Thread(
                target=lambda: results.append(build(engine, spec, say=heard.append))
            )
            worker.start()
            retry_until(lambda: heard, timeout=30, message="the second build did not wait")
            assert not engine.image_exists(ref) and not results
        worker.join(timeout=120)
        assert results == [(ref, True)], heard
        assert heard == [f"{spec.name}: waiting for another build of it to finish"]
        first = engine.image_id(ref)
        assert build(engine, spec) == (ref, False)  # cached
        assert build(engine, spec, rebuild=True) == (ref, True)
        second = engine.image_id(ref)
        assert first is not None and second is not None and second != first
        assert engine.image_id(first) is None  # the replaced image is gone
    finally:
        engine.run("rmi", ref)
        (state_dir() / f"build-{spec.name}.lock").unlink(missing_ok=True)
    assert not engine.image_exists(ref)


def test_no_engine_gives_the_exact_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where neither engine can run, the reason names both: what the fixture skips with
    and what `sane demo --containers` says."""
    from sane.testing.engine import ContainersUnavailable, find_engine

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("SANE_CONTAINER_ENGINE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no podman, no docker CLI
    with pytest.raises(ContainersUnavailable) as caught:
        find_engine()
    if Path("/var/run/docker.sock").exists():
        assert "Docker engine at unix:///var/run/docker.sock" in caught.value.reason
    else:
        assert caught.value.reason == (
            "no Docker engine (DOCKER_HOST is unset and /var/run/docker.sock is absent); "
            "podman is not installed (apt-get install podman runc slirp4netns uidmap)"
        )
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(ContainersUnavailable) as caught:
        find_engine("docker")
    assert caught.value.reason.startswith(
        f"the Docker engine at unix://{tmp_path}/nothing.sock does not answer ("
    )


def test_demo_without_an_engine_names_what_is_missing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **cli_env,
        "PATH": f"{tmp_path}:{os.path.dirname(sys.executable)}",
        "SANE_CONTAINER_ENGINE": "podman",
    }
    (tmp_path / "tmux").symlink_to(shutil.which("tmux") or "/usr/bin/tmux")
    code, doc, _ = cli(["sane.cli.main", "demo", "--containers"], env)
    assert code == 2 and doc["error"]["code"] == "usage_error"
    assert doc["error"]["message"] == (
        "sane demo --containers needs a Docker engine or podman with sane's images: "
        "podman is not installed (apt-get install podman runc slirp4netns uidmap)"
    )


def test_demo_on_containers_runs_the_story_and_leaves_nothing(container_service: Any) -> None:
    """`sane demo --containers` as a user runs it: Debian 12, busybox ash and Debian 13
    containers, every check of the story holds (server2, the busybox one, is rolled back
    alone), and afterwards none of its containers, no process naming its private TMPDIR
    (the podman service's socket is there) and no file of it are left."""
    from sane.testing.engine import OWNER_LABEL, labelled
    from sane.testing.images import IMAGES, reference

    from .test_examples import assert_left_nothing

    engine = container_service.engine
    missing = [
        n
        for n in ("debian", "busybox", "debian-trixie")
        if not engine.image_exists(reference(IMAGES[n]))
    ]
    if missing:
        _containers_unavailable(
            f"images not built ({', '.join(missing)}): run containers/build-images"
        )
    tmp = Path(tempfile.mkdtemp(prefix="sx-"))  # short: ssh control sockets live under it
    try:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SANE_HOME", "SANE_TMUX_SOCKET", "TMUX", "TMUX_PANE")
        }
        env.update(TMPDIR=str(tmp), TMUX_TMPDIR=str(tmp))
        proc = subprocess.Popen(
            [sys.executable, "-m", "sane.cli.main", "demo", "--containers"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        doc = json.loads(stdout)
        assert doc["demo_ok"] and all(c["ok"] for c in doc["checks"]), doc["checks"]
        assert {s: d["version"] for s, d in doc["final_health"].items()} == {
            "server1": "2.0.0",
            "server2": "2.0.0",
            "server3": "2.0.0",
        }
        assert {s: line.split(", ")[-1] for s, line in doc["hello"].items()} == {
            "server1": "-bash\n",
            "server2": "-ash\n",
            "server3": "-bash\n",
        }
        assert "server2: busybox container" in stderr
        assert "[server2] rolled_back after step:migrate failed" in stderr
        owners = labelled(engine, OWNER_LABEL).values()
        assert not [o for o in owners if o.split(":")[0] == str(proc.pid)]
        assert_left_nothing(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_demo_without_the_images_names_them(
    cli_env: dict[str, str], tmp_path: Path, container_service: Any
) -> None:
    """An engine that runs but lacks sane's images (an empty private store): the demo
    stops before starting anything and names the images and the command that builds them."""
    from sane.testing.images import IMAGES, reference

    if container_service.engine.kind != "podman":
        pytest.skip("an empty store is made with sane's private podman configuration")
    env = {
        **cli_env,
        "SANE_CONTAINERS_DIR": str(tmp_path / "empty-store"),
        "SANE_CONTAINER_ENGINE": "podman",
    }
    code, doc, _ = cli(["sane.cli.main", "demo", "--containers"], env)
    assert code == 2 and doc["error"]["code"] == "usage_error", doc
    refs = ", ".join(sorted(reference(IMAGES[n]) for n in ("debian", "busybox", "debian-trixie")))
    assert doc["error"]["message"] == (
        "sane demo --containers needs a Docker engine or podman with sane's images: "
        f"image {refs} is not built in the podman store: run containers/build-images"
    )


def test_without_an_engine_the_tests_skip_or_fail_as_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where no engine runs, a container test skips with the reason; with
    SANE_REQUIRE_CONTAINERS=1 (CI: .ci/run) it fails with the same reason instead."""
    reason = "podman is not installed (apt-get install podman runc slirp4netns uidmap)"
    monkeypatch.delenv("SANE_REQUIRE_CONTAINERS", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        _containers_unavailable(reason)
    assert skipped.value.msg == f"container fleet unavailable: {reason}"
    monkeypatch.setenv("SANE_REQUIRE_CONTAINERS", "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        _containers_unavailable(reason)
    assert failed.value.msg == (
        f"container fleet unavailable: {reason} "
        "(SANE_REQUIRE_CONTAINERS=1: the container tests must run)"
    )
