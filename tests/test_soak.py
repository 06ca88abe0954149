"""The soak (bench/soak.py) in miniature: 3 netns servers, 20 fleet runs, one server
killed and restarted mid-run and one link cut mid-run. The full-size figures (20
servers, 1,000 fleet runs) are in docs/reliability.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sane.testing.fleet import FleetUnavailable

ROOT = Path(__file__).resolve().parent.parent


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sane_bench_soak", ROOT / "bench" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.ssh
@pytest.mark.slow
def test_small_soak_is_exact_or_explicit_and_leaks_nothing() -> None:
    soak = load_soak()
    cfg = soak.Config(
        servers=3, runs=20, max_seconds=120, timeout=8.0, fault_every=10, faults=["kill", "link"]
    )
    try:
        report = soak.soak(cfg)
    except FleetUnavailable as exc:
        pytest.skip(f"netns test fleet unavailable: {exc.reason}")
    assert report["faults"] == {"kill": 1, "link": 1}
    assert report["fleet_runs"] == 20 and report["server_runs"] == 60
    assert report["verdict"] == [], report
    # The killed server can miss at most the 15 runs from its kill to the end; a link
    # cut of at most 4 s only delays runs whose deadline is 8 s: the rest are exact.
    assert report["outcomes"]["exact"] >= 60 - 15, report["outcomes"]
    assert report["before"]["ssh_clients"] == report["after"]["ssh_clients"] == 3


@pytest.mark.ssh
@pytest.mark.slow
def test_small_soak_with_sanes_own_faults() -> None:
    """A full $SANE_HOME, a second home on the same tmux server and a Ctrl-C, each in
    the middle of a fleet run (issue #16): still nothing but exact or explicit results,
    the second home never typed into a run of the first, nothing leaked."""
    soak = load_soak()
    cfg = soak.Config(
        servers=3,
        runs=12,
        max_seconds=120,
        timeout=8.0,
        fault_every=4,
        faults=["disk_full", "second_home", "ctrl_c"],
    )
    try:
        report = soak.soak(cfg)
    except FleetUnavailable as exc:
        pytest.skip(f"netns test fleet unavailable: {exc.reason}")
    assert report["faults"] == {"disk_full": 1, "second_home": 1, "ctrl_c": 1}
    assert report["verdict"] == [], report
    assert sum(report["second_home_outcomes"].values()) == 3, report
    assert report["lie_count"] == 0
