"""The public library API (``import sane``, docs/library.md): every example in the doc
runs as written against a real tmux server and real sshd servers; its results are the
documents the schemas describe; a downstream ``mypy --strict`` sees the types."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import sane
from sane.envelope import ok_document
from sane.schema import validate
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer, run_process

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_DOC = ROOT / "docs" / "library.md"


def examples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", LIBRARY_DOC.read_text(), re.M | re.S)


def test_the_public_names_load_lazily_from_one_list() -> None:
    """``import sane`` (every command does) loads none of the API, nor does importing a
    submodule (the import system asks ``hasattr(sane, name)`` first); each public name
    resolves; ``sane.__all__`` is ``sane.api.__all__`` and ``__version__``, and
    ``sane/__init__.py`` spells none of the names itself."""
    probe = (
        "import sys, sane; print(sorted(m for m in sys.modules if m.startswith('sane'))); "
        "from sane import errors, paths; print('sane.api' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["['sane']", "False"]
    from sane import api

    assert sane.__all__ == [*api.__all__, "__version__"]
    for name in sane.__all__:
        assert getattr(sane, name) is not None, name
    star: dict[str, Any] = {}
    exec("from sane import *", star)
    assert set(star) - {"__builtins__"} == set(sane.__all__)
    source = (ROOT / "sane" / "__init__.py").read_text()
    assert not [name for name in api.__all__ if f'"{name}"' in source]
    with pytest.raises(AttributeError):
        sane.no_such_name  # noqa: B018


@pytest.mark.slow
def test_every_example_in_the_doc_runs(
    cli_env: dict[str, str],
    tmux_server: TmuxTestServer,
    sane_home: Path,
    make_fleet: Any,
    tmp_path: Path,
) -> None:
    fleet = make_fleet(2)
    register(sane_home, fleet)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    env = {**cli_env, "APP_DIR": str(app_dir)}
    found = examples()
    assert len(found) >= 6
    for number, code in enumerate(found, 1):
        proc = run_process([sys.executable, "-c", code], env, timeout=180)
        assert proc.returncode == 0, f"example {number}:\n{code}\n{proc.stdout}{proc.stderr}"
    assert (app_dir / "app.conf").read_bytes() == b"port = 8080\n"


def test_results_are_the_documents_the_schemas_describe(
    sane_ctx: sane.Context, sane_home: Path, ssh_fleet: Any
) -> None:
    servers = register(sane_home, ssh_fleet)
    assert [s.name for s in sane.servers(home=sane_home)] == [s.name for s in servers]
    validate("run-command", ok_document(sane.run_command(sane_ctx, "echo hi")))
    validate("list-panes", ok_document(sane.list_panes(sane_ctx)))
    validate("detect-platform", ok_document(sane.detect_platform(sane_ctx)))
    ran = sane.fleet_run(sane_ctx, servers, "echo $FLEET_HOST", timeout=60)
    validate("fleet-run", ok_document(ran))
    assert ran["counts"]["ok"] == len(servers)
    validate("health", ok_document(sane.fleet_health(servers, home=sane_home)))
    waited = sane.fleet_health_wait(servers, '.status == "healthy"', timeout=0, home=sane_home)
    validate("health-wait", ok_document(waited))
    with pytest.raises(sane.NotFound) as caught:
        sane.run_command(sane_ctx, "true", pane="%999999")
    assert caught.value.code == "pane_not_found" and caught.value.exit_status == 3


DOWNSTREAM = """
import sane
from sane import FleetRunResult, RunOptions, RunResult


def exit_code(ctx: sane.Context) -> int | None:
    result: RunResult = sane.run_command(ctx, "true", options=RunOptions(timeout=5))
    return result["exit_code"]


def failed(result: FleetRunResult) -> list[str]:
    return [r["server"] for r in result["results"] if not r["ok"]]


def servers_ok(ctx: sane.Context) -> bool:
    return sane.fleet_run(ctx, sane.servers(tag="web"), "true")["status"] == "completed"
"""

WRONG = """
import sane


def wrong(ctx: sane.Context) -> int:
    return sane.run_command(ctx, "true")["output"]
"""


@pytest.mark.slow
def test_a_downstream_strict_type_check(tmp_path: Path) -> None:
    """A user's ``mypy --strict`` accepts correct use of the API and catches a wrong
    field type (it would see ``Any`` and accept both without ``py.typed`` and types)."""
    mypy = Path(sys.executable).parent / "mypy"
    if not mypy.exists():
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    (tmp_path / "good.py").write_text(DOWNSTREAM)
    (tmp_path / "bad.py").write_text(WRONG)
    argv = [
        str(mypy),
        "--strict",
        "--no-incremental",
        "--cache-dir",
        str(tmp_path / "c"),
        "--python-executable",
        sys.executable,
    ]
    good = subprocess.run(
        [*argv, "good.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run(
        [*argv, "bad.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and 'Incompatible return value type (got "str"' in bad.stdout, (
        bad.stdout
    )
