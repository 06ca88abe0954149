"""Health on real sshd servers: statuses, unknown with a reason, history, waiting."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.health import check, set_health, wait
from sane.fleet.registry import Server
from sane.testing import retry_until
from sane.testing.fleet import register

from .conftest import sane_json


@pytest.fixture(autouse=True)
def _clean_shared_homes(ssh_fleet: Any) -> Any:
    """Tests here write health files into the shared fleet's homes: remove them."""
    yield
    for server in ssh_fleet.servers:
        (Path(server.home) / ".sane" / "health.json").unlink(missing_ok=True)


def _health_file(fleet: Any, index: int) -> Path:
    return Path(fleet.servers[index].home) / ".sane" / "health.json"


def test_each_kind_of_file_is_reported(sane_home: Path, make_fleet: Callable[..., Any]) -> None:
    fleet = make_fleet(4)
    servers = register(sane_home, fleet)
    set_health(servers[0], "healthy", {"version": "1.0.0"})
    set_health(servers[1], "unhealthy", {"version": "1.0.0", "disk": {"free_gb": 2}})
    _health_file(fleet, 3).parent.mkdir(parents=True, exist_ok=True)
    _health_file(fleet, 3).write_text('{"status": "fine"')  # s3 has none; s4 is broken
    assert json.loads(_health_file(fleet, 0).read_text())["version"] == "1.0.0"
    result = check(sane_home, servers, query_expr=".version")
    by_name = {r["server"]: r for r in result["servers"]}
    assert (by_name["s1"]["status"], by_name["s1"]["query"]) == ("healthy", "1.0.0")
    assert by_name["s2"]["status"] == "unhealthy"
    assert by_name["s2"]["data"]["disk"] == {"free_gb": 2}
    assert (by_name["s3"]["status"], by_name["s3"]["reason"]) == ("unknown", "missing")
    assert by_name["s4"]["status"] == "unknown"
    assert by_name["s4"]["reason"].startswith("malformed")
    assert result["counts"] == {"healthy": 1, "degraded": 0, "unhealthy": 1, "unknown": 2}
    assert result["all_healthy"] is False
    # History: a second check extends the failure streaks, keeps s1's last ok time.
    again = {r["server"]: r for r in check(sane_home, servers)["servers"]}
    assert again["s2"]["history"]["failure_streak"] == 2
    assert again["s1"]["history"]["failure_streak"] == 0
    assert again["s1"]["history"]["last_ok_at"] is not None
    assert again["s3"]["history"]["last_ok_at"] is None


def test_server_list_shows_the_health_history(
    sane_home: Path, ssh_fleet: Any, cli_env: dict[str, str]
) -> None:
    from .conftest import cli

    servers = register(sane_home, ssh_fleet)
    set_health(servers[0], "healthy", {"version": "2.0.0"})
    check(sane_home, servers[:2])
    status, doc, _ = cli(["sane.cli.main", "server", "list"], cli_env)
    assert status == 0
    shown = {s["name"]: s["health_history"] for s in doc["servers"]}
    assert shown["s1"]["last_status"] == "healthy" and shown["s1"]["failure_streak"] == 0
    assert shown["s1"]["last_ok_at"] is not None and shown["s1"]["read_latency_ms"] > 0
    assert shown["s2"]["last_status"] == "unknown" and shown["s2"]["failure_streak"] == 1
    assert shown["s3"] is None  # never checked
    history = sane_home / "health-history.json"
    history.write_text("{not json")
    status, doc, _ = cli(["sane.cli.main", "server", "list"], cli_env)
    assert status == 0 and [s["health_history"] for s in doc["servers"]] == [None] * 3
    assert history.read_text() == "{not json"  # left for the next check to set aside


def test_unreachable_server_is_unknown_not_a_crash(
    sane_home: Path, make_fleet: Callable[..., Any]
) -> None:
    fleet = make_fleet(1)
    (server,) = register(sane_home, fleet)
    fleet.stop("s1")
    (report,) = check(sane_home, [server])["servers"]
    assert report["status"] == "unknown" and report["error"] == "connection_refused"


def test_wait_returns_when_the_last_server_turns_healthy(sane_home: Path, ssh_fleet: Any) -> None:
    """The servers recover one after another, each once the wait has seen the one before
    turn (its events), and the wait returns on the last one, not at its deadline: no
    timer in the scenario, and none in the check but the wait's own deadline."""
    servers = register(sane_home, ssh_fleet)
    for server in servers:
        set_health(server, "degraded", {})
    events: list[dict[str, Any]] = []

    def changes() -> list[tuple[str, str]]:
        return [(e["server"], e["status"]) for e in list(events)]

    def seen(name: str, status: str) -> Callable[[], bool]:
        return lambda: (name, status) in changes()

    def heal() -> None:
        for server in servers:
            retry_until(seen(server.name, "degraded"), timeout=60, message="not seen degraded")
        for server in servers:
            set_health(server, "healthy", {"version": "2"})
            retry_until(seen(server.name, "healthy"), timeout=60, message="not seen healthy")

    healer = threading.Thread(target=heal)
    healer.start()
    timeout = 120.0
    started = time.monotonic()
    try:
        result = wait(
            sane_home,
            servers,
            '.status == "healthy"',
            "all",
            timeout=timeout,
            interval=0.1,
            on_event=events.append,
        )
    finally:
        waited = time.monotonic() - started
        healer.join()
    assert result["met"] and result["waiting_for"] == []
    assert waited < timeout, "the wait ran to its deadline instead of returning when met"
    for server in servers:
        assert changes().index((server.name, "degraded")) < changes().index(
            (server.name, "healthy")
        )
    healthy = [changes().index((server.name, "healthy")) for server in servers]
    assert healthy == sorted(healthy), changes()  # one after another, as they recovered
    timed_out = wait(sane_home, servers, '.version == "3"', "all", timeout=0.3, interval=0.1)
    assert not timed_out["met"] and timed_out["waiting_for"] == ["s1", "s2", "s3"]


def test_bad_jq_is_invalid_argument(sane_home: Path) -> None:
    with pytest.raises(errors.InvalidArgument):
        check(sane_home, [Server(name="x", host="127.0.0.1")], query_expr=".[")


def test_cli(cli_env: dict[str, str], ssh_fleet: Any, sane_home: Path) -> None:
    register(sane_home, ssh_fleet)

    def sane(*args: str) -> tuple[int, dict[str, Any]]:
        return sane_json(cli_env, *args)

    status, doc = sane(
        "health",
        "set",
        "--server",
        "s1",
        "--status",
        "healthy",
        "--field",
        "version=1.2.3",
        "--json-field",
        "replicas=3",
    )
    assert status == 0 and doc["health"]["replicas"] == 3
    status, doc = sane("health", "--servers", "s1", "--query", ".replicas")
    assert status == 0 and doc["servers"][0]["query"] == 3
    # #17: the parallelism is the caller's to choose (it was fixed at 10).
    status, doc = sane("health", "--max-parallel", "3", "--query", ".replicas")
    assert status == 0 and [s["server"] for s in doc["servers"]] == ["s1", "s2", "s3"]
    status, doc = sane("health", "--max-parallel", "0")
    assert status == 2 and doc["error"]["code"] == "usage_error"
    status, doc = sane(
        "health",
        "wait",
        "--servers",
        "s1",
        "--until",
        '.version == "1.2.3"',
        "--timeout",
        "10",
        "--interval",
        "0.1",
    )
    assert status == 0 and doc["met"]
    status, doc = sane(
        "health",
        "wait",
        "--servers",
        "s1",
        "--until",
        '.version == "9"',
        "--timeout",
        "0.3",
        "--interval",
        "0.1",
    )
    assert status == 4 and doc["waiting_for"] == ["s1"]


def test_watch_snapshot(cli_env: dict[str, str], ssh_fleet: Any, sane_home: Path) -> None:
    from sane.fleet.watch import render

    servers = register(sane_home, ssh_fleet)
    set_health(servers[0], "healthy", {"version": "4.2"})

    def sane(*args: str) -> tuple[int, dict[str, Any]]:
        return sane_json(cli_env, *args)

    assert sane("connect", "s1", "s2")[0] == 0
    status, first = sane("run-command", "--server", "s2", "--timeout", "0.2", "sleep 30")
    assert first["status"] == "running"
    status, doc = sane("watch", "--once")
    assert status == 0, doc  # once seen as 70 (internal_error): the document says why
    rows = {r["server"]: r for r in doc["servers"]}
    assert (rows["s1"]["connection"], rows["s1"]["health"], rows["s1"]["version"]) == (
        "connected",
        "healthy",
        "4.2",
    )
    assert (rows["s2"]["run_id"], rows["s3"]["connection"]) == (first["run_id"], "disconnected")
    assert rows["s3"]["health"] == "unknown" and rows["s3"]["health_reason"] == "missing"
    text = render(doc)
    assert "s1" in text and "healthy" in text and first["run_id"] in text
    assert sane("run", "interrupt", first["run_id"])[1]["status"] == "interrupted"
