"""A hostile server's health.json and a hostile jq expression (issue #16 item 8 and a
Low item): reads are bounded per server (size, depth, time, regular files only), and
jq sees neither the orchestrator's environment nor its files, within a time limit.

Before: a symlink to /dev/zero grew `sane health` to 2 GB in 14 s; 300 levels of
nesting failed every server with internal_error; a FIFO made `health wait --timeout
2` take 15.4 s; `$ENV` handed the orchestrator's secrets to whoever asked."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet import jqsafe
from sane.fleet.health import HEALTH_MAX, check, set_health, wait
from sane.testing.fleet import register


def _health_file(fleet: Any, index: int) -> Path:
    path = Path(fleet.servers[index].home) / ".sane" / "health.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_hostile_health_files_fail_only_their_server(sane_home: Path, make_fleet: Any) -> None:
    fleet = make_fleet(5)
    servers = register(sane_home, fleet)
    set_health(servers[0], "healthy", {"version": "1.0"})
    _health_file(fleet, 1).symlink_to("/dev/zero")
    os.mkfifo(_health_file(fleet, 2))
    _health_file(fleet, 3).write_text('{"status": "healthy", "x": ' + "[" * 300 + "]" * 300 + "}")
    _health_file(fleet, 4).write_text(
        '{"status": "healthy", "pad": "' + "x" * (HEALTH_MAX + 10) + '"}'
    )
    started = time.monotonic()
    result = check(sane_home, servers, query_expr=".version")
    elapsed = time.monotonic() - started
    by_name = {r["server"]: r for r in result["servers"]}
    assert (by_name["s1"]["status"], by_name["s1"]["query"]) == ("healthy", "1.0")
    for name, reason in (
        ("s2", "not a regular file"),
        ("s3", "not a regular file"),
        ("s4", "malformed"),
        ("s5", "too large"),
    ):
        assert by_name[name]["status"] == "unknown", by_name[name]
        assert by_name[name]["reason"].startswith(reason), by_name[name]
    assert elapsed < 30, elapsed  # /dev/zero and the FIFO were not read at all


def test_health_wait_keeps_to_its_deadline(sane_home: Path, make_fleet: Any) -> None:
    fleet = make_fleet(1)
    servers = register(sane_home, fleet, health_path="~/hang.json")
    # A FIFO nobody writes: the server's cat blocked on it for READ_TIMEOUT (15 s),
    # and `health wait --timeout 2` took 15.4 s.
    os.mkfifo(Path(fleet.servers[0].home, "hang.json"))
    started = time.monotonic()
    result = wait(sane_home, servers, '.status == "healthy"', "all", timeout=2, interval=0.5)
    assert result["met"] is False
    assert time.monotonic() - started < 8


def test_jq_sees_no_environment_no_files_and_has_a_time_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "orchestrator-secret")
    (tmp_path / "secret.json").write_text('"file-secret"')
    doc = {"status": "healthy"}
    for expression in ("$ENV.AWS_SECRET_ACCESS_KEY", "env.AWS_SECRET_ACCESS_KEY"):
        assert jqsafe.evaluate(expression, [doc])[0] == (None, None)
    for expression in (
        f'import "secret" as $s {{search: "{tmp_path}"}}; $s',
        f'include "secret" {{search: "{tmp_path}"}}; .',
    ):
        with pytest.raises(errors.InvalidArgument) as caught:
            jqsafe.evaluate(expression, [doc])
        assert caught.value.details["reason"] == "module"
    # The words inside a string are just text.
    assert jqsafe.evaluate('"import" + .status', [doc])[0].value == "importhealthy"
    started = time.monotonic()
    slow = jqsafe.evaluate("[range(1e12)] | length", [doc, doc], time_limit=1)
    assert all(a.error is not None and "time limit" in a.error for a in slow)
    assert time.monotonic() - started < 5
    # A runtime error on one document is that document's answer only.
    answers = jqsafe.evaluate(".a + 1", [{"a": 1}, {"a": "x"}])
    assert answers[0] == (2, None) and answers[1].error is not None


def test_the_read_only_health_tool_does_not_leak_the_environment(
    monkeypatch: pytest.MonkeyPatch, sane_home: Path, ssh_fleet: Any
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "orchestrator-secret")
    servers = register(sane_home, ssh_fleet)
    result = check(sane_home, servers[:1], query_expr="$ENV")
    assert "orchestrator-secret" not in json.dumps(result)
