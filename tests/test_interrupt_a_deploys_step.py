"""A deploy's step interrupted from another process (``run interrupt --force``; issue
15 measured ``state_invalid ... record.json: No such file or directory`` answers to
such interrupts, 3 of 14): every interrupt is answered with how the run ended, and the
deploy learns it at once and rolls back. Before, the deploy followed its step on to the
step's own timeout (700 s here), the pane already free for anyone: the interrupter
ended the run through its record, with a probe the deploy's follower could not see."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sane.testing.fleet import register

from .conftest import sane_json


def _step_run_id(env: dict[str, str], deploy: subprocess.Popen[str]) -> str:
    """The run id of the step holding s1's pane, once it does (a deadline, polled)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert deploy.poll() is None, deploy.communicate()
        _, listing = sane_json(env, "list-panes", "--all")
        for pane in listing["panes"]:
            if pane["sane_server"] == "s1" and pane["busy"] and pane["run_id"]:
                return str(pane["run_id"])
        time.sleep(0.05)  # poll interval of a deadline-bounded wait
    raise AssertionError("the deploy's step never held s1's pane")


@pytest.mark.slow
def test_forced_interrupts_of_a_deploys_step_from_another_process_say_how_it_ended(
    cli_env: dict[str, str], sane_home: Path, make_fleet: Callable[..., Any], tmp_path: Path
) -> None:
    fleet = make_fleet(1)
    register(sane_home, fleet)
    plan = tmp_path / "plan.json"
    step = {"name": "hold", "run": "sleep 600", "undo": "true", "timeout": 700}
    plan.write_text(json.dumps({"name": "hold", "steps": [step]}))
    answers = []
    for _ in range(4):
        deploy = subprocess.Popen(
            [sys.executable, "-m", "sane.cli.main", "deploy", "run", str(plan), "--servers", "s1"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            run_id = _step_run_id(cli_env, deploy)
            status, doc = sane_json(cli_env, "run", "interrupt", "--force", run_id)
            answers.append((status, doc))
            out, err = deploy.communicate(timeout=90)
        finally:
            if deploy.poll() is None:
                deploy.kill()
                deploy.communicate()
        report = json.loads(out)
        assert report["status"] not in ("completed", "running"), (report, err)
        step = report["servers"][0]["steps"][0]
        assert (step["status"], step["exit_code"]) == ("interrupted", 130), report
    for _status, doc in answers:
        assert doc["ok"], doc
        assert doc["status"] == "interrupted" and doc["exit_code"] == 130, doc
