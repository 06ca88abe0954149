"""sane deploy on real sshd servers: saga rollback, canary, the file cache, crash recovery.

Every outcome is asserted from the servers' own filesystems (each fleet server's home
is a directory on this host), not only from sane's report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sane import errors
from sane.deploy import api
from sane.fleet.registry import Registry, Server
from sane.ops.context import Context
from sane.testing import retry_until
from sane.testing.fleet import register

LOG_STEPS = [
    {"name": "one", "run": "echo one >> log; touch one", "undo": "echo undo-one >> log; rm -f one"},
    {
        "name": "two",
        "run": 'if [ "$FLEET_HOST" = s2 ]; then echo broken >&2; exit 3; fi; '
        "echo two >> log; touch two",
        "undo": "echo undo-two >> log; rm -f two",
    },
]


def write_plan(tmp_path: Path, **plan: Any) -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"name": "t", **plan}))
    return str(path)


def home_log(fleet: Any, name: str) -> list[str]:
    log = fleet[name].home / "log"
    return log.read_text().split() if log.exists() else []


def states(report: dict[str, Any]) -> dict[str, str]:
    return {s["server"]: s["state"] for s in report["servers"]}


@pytest.fixture
def fleet3(sane_ctx: Context, make_fleet: Callable[..., Any]) -> Any:
    fleet = make_fleet(3)
    register(sane_ctx.home, fleet)
    return fleet


def servers_of(sane_ctx: Context) -> list[Any]:
    from sane.fleet.registry import Registry

    return Registry(sane_ctx.home).servers()


def test_failed_step_undoes_only_that_server(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, steps=LOG_STEPS, policy={"rollback": "failed"})
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx))
    assert states(report) == {"s1": "deployed", "s2": "rolled_back", "s3": "deployed"}
    assert report["status"] == "partial" and report["counts"] == {"deployed": 2, "rolled_back": 1}
    s2 = next(s for s in report["servers"] if s["server"] == "s2")
    assert s2["failed_item"] == "step:two" and s2["undone"] == ["step:one"]
    assert s2["reason"] == "two run exited 3: broken"
    # the servers' own files say the same
    assert home_log(fleet3, "s2") == ["one", "undo-one"]
    assert not (fleet3["s2"].home / "one").exists()
    for name in ("s1", "s3"):
        assert home_log(fleet3, name) == ["one", "two"]
        assert (fleet3[name].home / "two").exists()


def test_rollback_all_undoes_every_server_in_reverse(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        steps=LOG_STEPS,
        policy={"rollback": "all"},
        strategy={"kind": "rolling", "batch_size": 1},
    )
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx))
    assert states(report) == {"s1": "rolled_back", "s2": "rolled_back", "s3": "untouched"}
    assert report["status"] == "rolled_back"
    assert home_log(fleet3, "s1") == ["one", "two", "undo-two", "undo-one"]
    assert home_log(fleet3, "s2") == ["one", "undo-one"]
    assert home_log(fleet3, "s3") == []
    for name in ("s1", "s2"):
        assert not (fleet3[name].home / "one").exists()
        assert not (fleet3[name].home / "two").exists()


def test_rollback_all_in_parallel_takes_finished_servers_back(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    steps = [
        LOG_STEPS[0],
        {
            **LOG_STEPS[1],
            "run": 'if [ "$FLEET_HOST" = s2 ]; then sleep 1; '
            "exit 3; fi; echo two >> log; touch two",
        },
    ]
    plan = write_plan(tmp_path, steps=steps, policy={"rollback": "all"})
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx))
    assert set(states(report).values()) == {"rolled_back"}
    for name in ("s1", "s3"):  # they had finished before s2 failed
        assert home_log(fleet3, name) == ["one", "two", "undo-two", "undo-one"]
    assert home_log(fleet3, "s2") == ["one", "undo-one"]


def test_failing_undo_is_reported_and_others_go_on(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    steps = [
        {**LOG_STEPS[0], "undo": "echo undo-one >> log; exit 9"},
        {"name": "mid", "run": "echo mid >> log", "undo": "echo undo-mid >> log"},
        LOG_STEPS[1],
    ]
    plan = write_plan(tmp_path, steps=steps)
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx)[1:2])
    s2 = report["servers"][0]
    assert s2["state"] == "rollback_failed" and s2["undo_failed"] == ["step:one"]
    assert s2["undone"] == ["step:mid"]
    assert home_log(fleet3, "s2") == ["one", "mid", "undo-mid", "undo-one"]


def test_canary_failing_its_gate_touches_no_other_server(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    steps = [
        {
            "name": "app",
            "run": "mkdir -p .sane; echo app >> log; "
            'printf \'{"status": "unhealthy"}\' > .sane/health.json',
            "undo": "echo undo-app >> log",
        }
    ]
    plan = write_plan(
        tmp_path,
        steps=steps,
        strategy={"kind": "canary", "canary": 1},
        health={"until": '.status == "healthy"', "timeout": 1, "interval": 0.2},
    )
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx))
    assert states(report) == {"s1": "rolled_back", "s2": "untouched", "s3": "untouched"}
    assert report["aborted"] == "the canary failed"
    assert home_log(fleet3, "s1") == ["app", "undo-app"]
    assert home_log(fleet3, "s2") == [] and home_log(fleet3, "s3") == []
    gate = next(e for e in report["servers"][0]["steps"] if e["item"] == "health")
    assert gate["ok"] is False and "unhealthy" in gate["detail"]


def test_healthy_canary_lets_the_rest_follow(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    steps = [
        {
            "name": "app",
            "run": 'mkdir -p .sane; printf \'{"status": "healthy", '
            '"version": "%s"}\' "$VERSION" > .sane/health.json',
            "undo": "true",
        }
    ]
    plan = write_plan(
        tmp_path,
        steps=steps,
        env={"VERSION": "2.0"},
        strategy={"kind": "canary", "canary": 1},
        health={"until": '.version == "2.0"', "timeout": 5},
    )
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx))
    assert report["status"] == "completed"
    for name in ("s1", "s2", "s3"):
        doc = json.loads((fleet3[name].home / ".sane/health.json").read_text())
        assert doc == {"status": "healthy", "version": "2.0"}


def test_unchanged_files_are_not_sent_again(sane_ctx: Context, fleet3: Any, tmp_path: Path) -> None:
    (tmp_path / "app.sh").write_bytes(b"#!/bin/sh\necho app v1\n")
    plan = write_plan(
        tmp_path,
        files=[{"source": "app.sh", "path": "/root/app/app.sh", "mode": "0755"}],
        steps=[{"name": "smoke", "run": "/root/app/app.sh", "undo": "true"}],
    )
    servers = servers_of(sane_ctx)
    first = api.deploy(sane_ctx, plan, servers)
    assert first["status"] == "completed"
    target = fleet3["s1"].home / "app" / "app.sh"
    assert target.read_bytes() == b"#!/bin/sh\necho app v1\n"
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    mtime = target.stat().st_mtime_ns
    second = api.deploy(sane_ctx, plan, servers)
    actions = {
        s["server"]: next(e["action"] for e in s["steps"] if e["item"].startswith("file:"))
        for s in second["servers"]
    }
    assert actions == {"s1": "unchanged", "s2": "unchanged", "s3": "unchanged"}
    assert target.stat().st_mtime_ns == mtime
    smoke = next(e for e in second["servers"][0]["steps"] if e["item"] == "step:smoke")
    assert smoke["output"] == "app v1\n"


def test_rolled_back_file_gets_its_old_content_back(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    (fleet3["s2"].home / "conf").write_text("old\n")
    (tmp_path / "conf").write_text("new\n")
    (tmp_path / "fresh").write_text("fresh\n")
    plan = write_plan(
        tmp_path,
        files=[
            {"source": "conf", "path": "/root/conf"},
            {"source": "fresh", "path": "/root/fresh"},
        ],
        steps=[LOG_STEPS[1]],
    )
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx))
    assert states(report)["s2"] == "rolled_back"
    assert (fleet3["s2"].home / "conf").read_text() == "old\n"
    assert not (fleet3["s2"].home / "fresh").exists()  # it was not there before
    assert (fleet3["s1"].home / "conf").read_text() == "new\n"


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        (
            {"steps": [{"name": "a", "run": "true", "undo": "true", "colour": "red"}]},
            "steps.0.colour",
        ),
        ({"steps": [{"name": "a", "run": "true"}]}, "steps.0.undo"),
        (
            {
                "steps": [
                    {"name": "a", "run": "true", "undo": "true", "after": ["b"]},
                    {"name": "b", "run": "true", "undo": "true", "after": ["a"]},
                ]
            },
            "steps.0.after",
        ),
        (
            {
                "steps": [{"name": "a", "run": "true", "undo": "true"}],
                "strategy": {"kind": "big-bang"},
            },
            "strategy.kind",
        ),
        (
            {
                "steps": [{"name": "a", "run": "true", "undo": "true"}],
                "policy": {"rollback": "sometimes"},
            },
            "policy.rollback",
        ),
    ],
)
def test_bad_plan_names_the_field_and_runs_nothing(
    sane_ctx: Context, tmp_path: Path, plan: dict[str, Any], field: str
) -> None:
    path = write_plan(tmp_path, **plan)
    with pytest.raises(errors.PlanInvalid) as caught:
        api.deploy(sane_ctx, path, [])
    assert caught.value.details["field"] == field
    assert field in caught.value.message
    assert not (sane_ctx.home / "deploys").exists()


def test_steps_run_in_dependency_order(sane_ctx: Context, fleet3: Any, tmp_path: Path) -> None:
    steps = [
        {"name": "c", "run": "echo c >> log", "after": ["b"]},
        {"name": "a", "run": "echo a >> log"},
        {"name": "b", "run": "echo b >> log", "after": ["a"]},
    ]
    plan = write_plan(tmp_path, steps=steps, policy={"rollback": "none"})
    dry = api.dry_run(plan, servers_of(sane_ctx))
    assert dry["items"] == ["step:a", "step:b", "step:c"]
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx)[:1])
    assert report["status"] == "completed"
    assert home_log(fleet3, "s1") == ["a", "b", "c"]


def test_retries_and_check(sane_ctx: Context, fleet3: Any, tmp_path: Path) -> None:
    steps = [
        {
            "name": "flaky",
            "run": "echo try >> log; [ $(wc -l < log) -ge 2 ]",
            "check": "grep -c try log",
            "retries": 2,
            "undo": "true",
        }
    ]
    plan = write_plan(tmp_path, steps=steps)
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx)[:1])
    assert report["status"] == "completed"
    entries = [(e["phase"], e["attempt"], e["ok"]) for e in report["servers"][0]["steps"]]
    assert entries == [("do", 1, False), ("do", 2, True), ("check", 2, True)]
    assert home_log(fleet3, "s1") == ["try", "try"]


def _sane(cli_env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", *args],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


SLOW_STEPS = [
    {"name": "one", "run": "echo one >> log", "undo": "echo undo-one >> log"},
    {
        "name": "slow",
        "run": "echo slow-start >> log; sleep 2; echo slow-end >> log",
        "undo": "echo undo-slow >> log",
    },
    {"name": "three", "run": "echo three >> log", "undo": "echo undo-three >> log"},
]


def _kill_during_slow_step(cli_env: dict[str, str], tmp_path: Path, fleet: Any) -> str:
    plan = write_plan(tmp_path, steps=SLOW_STEPS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sane.cli.main", "deploy", plan, "--all"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deploys = Path(cli_env["SANE_HOME"]) / "deploys"

    def slow_running_everywhere() -> bool:
        return all(home_log(fleet, n)[-1:] == ["slow-start"] for n in fleet.names)

    retry_until(slow_running_everywhere, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (deploy_id,) = os.listdir(deploys)
    return deploy_id


def test_kill_9_mid_deploy_then_status_and_resume(
    cli_env: dict[str, str], sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    deploy_id = _kill_during_slow_step(cli_env, tmp_path, fleet3)
    code, status = _sane(cli_env, "deploy", "status", deploy_id)
    assert code == 0 and status["status"] == "interrupted"
    for server in status["servers"]:
        assert server["state"] == "interrupted"
        assert server["applied"] == ["step:one"]
        assert [(f["item"], f["phase"]) for f in server["in_flight"]] == [("step:slow", "do")]
    code, resumed = _sane(cli_env, "deploy", "resume", deploy_id)
    assert code == 0 and resumed["status"] == "completed", json.dumps(resumed, indent=1)
    for name in fleet3.names:  # nothing done twice, nothing skipped
        assert home_log(fleet3, name) == ["one", "slow-start", "slow-end", "three"]
    for server in resumed["servers"]:
        slow = next(e for e in server["steps"] if e["item"] == "step:slow")
        assert slow["recovered"] is True and slow["exit_code"] == 0


def test_a_recovered_step_still_answers_run_wait_once_the_engine_forgot_it(
    cli_env: dict[str, str], sane_home: Path, fleet3: Any, tmp_path: Path
) -> None:
    """The slow step's run outlived its deploy (kill -9); ``deploy resume`` followed it
    to its end with a later call (run wait) and, the step journalled, forgot its
    record. That run id (in the deploy's report, in an earlier pane_busy) must still
    answer run wait and run interrupt with the run's ending: before, run_not_found,
    since only a run that ended within its first call left its ending in the pane."""
    deploy_id = _kill_during_slow_step(cli_env, tmp_path, fleet3)
    code, resumed = _sane(cli_env, "deploy", "resume", deploy_id)
    assert code == 0 and resumed["status"] == "completed", json.dumps(resumed, indent=1)
    for server in resumed["servers"]:
        slow = next(e for e in server["steps"] if e["item"] == "step:slow")
        assert slow["recovered"] is True, slow
        run_id = slow["run_id"]
        assert not (sane_home / "runs" / run_id).exists()  # forgotten: the journal has it
        for verb in ("wait", "interrupt"):
            code, ended = _sane(cli_env, "run", verb, run_id)
            assert code == 0 and ended["ok"], (verb, ended)
            assert (ended["run_id"], ended["status"], ended["exit_code"], ended["output"]) == (
                run_id,
                "completed",
                0,
                "",
            ), (verb, ended)


def test_kill_9_mid_deploy_then_rollback(
    cli_env: dict[str, str], sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    deploy_id = _kill_during_slow_step(cli_env, tmp_path, fleet3)
    code, rolled = _sane(cli_env, "deploy", "rollback", deploy_id)
    assert code == 0 and rolled["status"] == "rolled_back", rolled
    for name in fleet3.names:  # the slow step finished, so it is undone too, first
        assert home_log(fleet3, name) == ["one", "slow-start", "slow-end", "undo-slow", "undo-one"]
    code, listed = _sane(cli_env, "deploy", "list")
    assert [(d["deploy_id"], d["status"]) for d in listed["deploys"]] == [
        (deploy_id, "rolled_back")
    ]


def test_unknown_deploy_and_bad_plan_over_the_cli(
    cli_env: dict[str, str], sane_home: Path, tmp_path: Path
) -> None:
    Registry(sane_home).add(Server(name="w1", host="127.0.0.1", port=9))
    code, doc = _sane(cli_env, "deploy", "status", "d-nope")
    assert code == 3 and doc["error"]["code"] == "deploy_not_found"
    path = write_plan(tmp_path, steps=[{"name": "a", "run": "true"}])
    code, doc = _sane(cli_env, "deploy", path, "--servers", "x")
    assert code == 3 and doc["error"]["code"] == "server_not_found"
    code, doc = _sane(cli_env, "deploy", path, "--dry-run", "--all")
    assert code == 2 and doc["error"]["code"] == "plan_invalid"
    assert doc["error"]["details"]["field"] == "steps.0.undo"
    code, doc = _sane(cli_env, "deploy", path)  # a deploy never defaults to every server
    assert code == 2 and doc["error"]["code"] == "usage_error"
    assert "--servers" in doc["error"]["message"]


def test_an_unreachable_server_fails_alone_with_the_reason(
    sane_ctx: Context, fleet3: Any, tmp_path: Path
) -> None:
    fleet3.stop("s3")
    plan = write_plan(tmp_path, steps=LOG_STEPS[:1])
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx))
    assert states(report) == {"s1": "deployed", "s2": "deployed", "s3": "rolled_back"}
    s3 = report["servers"][2]
    assert s3["failed_item"] == "step:one" and s3["applied"] == []
    assert s3["steps"][0]["status"] == "unreachable"
    assert s3["steps"][0]["error"]["code"] == "connection_refused"


def test_one_process_at_a_time_on_a_deploy(sane_ctx: Context, fleet3: Any, tmp_path: Path) -> None:
    from sane.deploy.engine import _owned, deploys_dir

    plan = write_plan(tmp_path, steps=LOG_STEPS[:1])
    report = api.deploy(sane_ctx, plan, servers_of(sane_ctx)[:1])
    directory = deploys_dir(sane_ctx) / report["deploy_id"]
    with _owned(directory):  # as another live process working on it would
        with pytest.raises(errors.DeployRunning):
            api.resume(sane_ctx, report["deploy_id"])
        assert api.status(sane_ctx, report["deploy_id"])["status"] == "completed"
    assert api.rollback(sane_ctx, report["deploy_id"])["status"] == "rolled_back"
    assert home_log(fleet3, "s1") == ["one", "undo-one"]
