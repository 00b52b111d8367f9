"""A third party's plugins, written from docs/plugins.md alone (``tests/plugins/thirdparty``: a fault
whose entry point, class and undo record's name all differ, a probe and a reporter), installed beside
drill as pip would install them: drill plans and runs them, and recovers the fault after a crash."""

from __future__ import annotations

import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from drillrun import ROOT, drill_run, snapshot, unchanged

from drills import plugins
from drills.cli import main
from drills.environment import Environment, load_environment
from drills.journal import read_journal
from drills.labprocess import LabProcess, start_lab
from drills.recover import needs_recovery

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab

PACKAGE = ROOT / "tests" / "plugins" / "thirdparty"
SHRINK = PACKAGE / "scenarios" / "shrink-web.yaml"
SHRINK_LONG = PACKAGE / "scenarios" / "shrink-web-long.yaml"
TIME_SCALE = 200.0


@pytest.fixture(scope="module")
def plugin_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """A lab of this module's own, fast: the plugin's drills are short and sample slowly."""
    with start_lab(time_scale=TIME_SCALE, directory=tmp_path_factory.mktemp("lab")) as process:
        yield process


@pytest.fixture(scope="module")
def plugin_env(plugin_lab: LabProcess) -> Environment:
    return load_environment(plugin_lab.environment_file)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package installed as pip would install it, the venv untouched: its distribution's metadata
    (``entry_points.txt`` from its pyproject.toml) in a folder of its own, to put on the path with its
    source."""
    folder = tmp_path_factory.mktemp("site")
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    info = folder / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in names.items()) + "\n"
        for group, names in project["entry-points"].items()))
    return folder


@pytest.fixture
def installed(site: Path) -> Iterator[None]:
    """The package installed for this test's ``drill`` commands, uninstalled after."""
    with _installed(site):
        yield


@contextmanager
def _installed(site: Path) -> Iterator[None]:
    """The package importable and registered in this process while the block runs."""
    sys.path[:0] = _paths(site)
    _forget_plugins()
    try:
        yield
    finally:
        del sys.path[:len(_paths(site))]
        for module in [m for m in sys.modules if m == "shopchaos" or m.startswith("shopchaos.")]:
            del sys.modules[module]
        _forget_plugins()


def _paths(site: Path) -> list[str]:
    """What a spawned ``drill`` needs on PYTHONPATH to see the package: its metadata and its source."""
    return [str(site), str(PACKAGE)]


def _forget_plugins() -> None:
    """Make the registry look at the installed distributions again (it reads them once per process)."""
    plugins._load.cache_clear()
    plugins._origins.cache_clear()


def _drill(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``drill ARGS`` in this process: its exit code and what it printed."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _web_replicas(env: Environment) -> int:
    return int(snapshot(env)["us"]["replicas"]["shop/web"])


@pytest.mark.usefixtures("installed")
def test_the_plugins_fault_appears_in_drill_plan(plugin_lab: LabProcess, plugin_env: Environment,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with unchanged(plugin_env):
        code, plan = _drill("plan", str(SHRINK), "--env", str(plugin_lab.environment_file), capsys=capsys)
    assert code == 0, plan
    us = plugin_env.regions["us"]
    assert "web_scale: desired-replicas every 15.0s" in plan
    assert "shrink-web: fault scale-web-down in us: scale shop/web in us from 3 to 1 replicas" in plan
    assert (f"undone by hand with: kubectl --kubeconfig {us.kubeconfig} --context {us.context} -n shop "
            "scale deployment/web --replicas=3") in plan
    assert "nothing was changed." in plan


@pytest.mark.usefixtures("installed")
def test_the_plugins_run_in_a_lab_drill_and_the_reporter_writes_its_file(
        plugin_lab: LabProcess, plugin_env: Environment, runs: Path) -> None:
    with unchanged(plugin_env):
        run = drill_run(runs, str(SHRINK), "--env", str(plugin_lab.environment_file), "--trials", "1")
    assert (run.code, run.record["verdict"]) == (0, "passed"), run.output
    assert run.metric("web_scale.min_desired")["value"] == 1
    assert [r["outcome"] for r in run.record["rollback"]] == ["reverted"]
    summary = (run.run_dir / "shop-summary.txt").read_text()
    assert summary == "shrink-web: passed\n  web_scale.min_desired = 1\n"


def test_the_plugins_fault_is_recovered_after_kill_9_and_named_when_uninstalled(
        plugin_lab: LabProcess, plugin_env: Environment, site: Path, runs: Path,
        spawn: Callable[..., Spawned], capsys: pytest.CaptureFixture[str]) -> None:
    with unchanged(plugin_env):
        drill = spawn([sys.executable, "-m", "drills", "run", str(SHRINK_LONG), "--env",
                       str(plugin_lab.environment_file), "--runs-dir", str(runs), "--trials", "1"],
                      cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(_paths(site))})
        run_dir = _applied(runs)
        drill.kill()  # SIGKILL: no rollback, no run_ended
        assert _web_replicas(plugin_env) == 1
        assert needs_recovery(run_dir)

        # Uninstalled, drill cannot undo the fault: it says which plugin applied it and what to run.
        code, gone = _drill("recover", "--runs-dir", str(runs), capsys=capsys)
        assert code == 3, gone
        us = plugin_env.regions["us"]
        assert ("error: the fault plugin 'scale-web-down' (shopchaos.faults:ShrinkDeployment from shop-chaos "
                "1.2.0) that applied it is no longer installed") in gone
        assert (f"undo by hand: kubectl --kubeconfig {us.kubeconfig} --context {us.context} -n shop scale "
                "deployment/web --replicas=3") in gone
        assert _web_replicas(plugin_env) == 1

        # Installed, through its entry point, although the undo record names the fault otherwise.
        with _installed(site):
            code, recovered = _drill("recover", "--runs-dir", str(runs), capsys=capsys)
        assert code == 0, recovered
        assert "reverted  shrink-deployment in us: scale shop/web in us from 3 to 1 replicas" in recovered
    assert not needs_recovery(run_dir)


def _applied(runs: Path, timeout: float = 60.0) -> Path:
    """The run directory of the one drill in ``runs``, once its journal says the fault is applied. The
    journal is what recover reads; polled, since nothing else tells a test that a line was written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in runs.glob("*/events.jsonl"):
            if any(e.event == "fault_applied" for e in read_journal(journal)):
                return journal.parent
        time.sleep(0.05)
    raise AssertionError(f"no fault_applied in {runs} within {timeout:g} s")
