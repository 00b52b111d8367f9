"""Fixtures shared by every test: labs started as users start them, and the tools to drive them.

``lab`` is a lab process (``drill lab up``) started through :mod:`drills.labprocess`, one per test
module, at a high time scale so that a 5-minute node failure timeout takes 5 real seconds. Tests that
share it leave it as they found it (uncordon, scale back, start nodes); a test that cannot starts its
own with :func:`drills.labprocess.start_lab`. ``scripts/test`` runs pytest-xdist with
``--dist loadscope``, so a module's tests share one worker and one lab.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubectlrun import Kubectl

from drills.environment import Environment, load_environment
from drills.labprocess import LabProcess, start_lab


@pytest.fixture(scope="session", autouse=True)
def _runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs made by tests go to a temporary runs dir, never the user's state directory (the default):
    ``DRILL_RUNS_DIR`` is set for the whole session, and inherited by the drills tests spawn."""
    saved = os.environ.get("DRILL_RUNS_DIR")
    os.environ["DRILL_RUNS_DIR"] = str(tmp_path_factory.mktemp("drill-runs"))
    yield
    if saved is None:
        os.environ.pop("DRILL_RUNS_DIR", None)
    else:
        os.environ["DRILL_RUNS_DIR"] = saved


ARTIFACTS_VARIABLE = "DRILL_TEST_ARTIFACTS"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests keep what a person should be able to look at after the run (a screenshot of
    report.html, a recording of the live view): ``$DRILL_TEST_ARTIFACTS``, else ``test-artifacts/``
    at the repository's root. Kept after the run, so that CI can upload it."""
    chosen = os.environ.get(ARTIFACTS_VARIABLE)
    directory = Path(chosen) if chosen else Path(__file__).resolve().parent.parent / "test-artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


LAB_TIME_SCALE = 60.0
"""Lab seconds per real second in tests: fast, yet 10 ms of scheduling noise is only 0.6 lab seconds."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """A lab process shared by the tests of one module, stopped after them."""
    with start_lab(time_scale=LAB_TIME_SCALE, directory=tmp_path_factory.mktemp("lab")) as process:
        yield process


RBAC_MANIFESTS = Path(__file__).resolve().parents[1] / "deploy" / "rbac"
"""The shipped RBAC manifests, which an ``rbac_lab`` enforces."""


@pytest.fixture(scope="module")
def rbac_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """A lab enforcing the shipped RBAC manifests: ``identities/<name>.yaml`` in its directory is the
    environment file of each ServiceAccount there (``drill-readonly``, ``drill-operator``)."""
    folder = tmp_path_factory.mktemp("rbac-lab")
    topology = folder / "topology.yaml"
    topology.write_text(f"rbac: [{RBAC_MANIFESTS}]\n")
    with start_lab(topology=topology, time_scale=LAB_TIME_SCALE, directory=folder / "lab") as process:
        yield process


@pytest.fixture(scope="module")
def lab_env(lab: LabProcess) -> Environment:
    """The lab's environment file, loaded as a run loads it."""
    return load_environment(lab.environment_file)


@pytest.fixture(scope="module")
def kubectl(lab_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl against the module's lab."""
    kubeconfig = next(iter(lab_env.regions.values())).kubeconfig
    assert kubeconfig is not None
    return Kubectl(Path(kubeconfig), tmp_path_factory.mktemp("kubectl-cache"))


class Spawned:
    """A command running in its own process group, its stdout and stderr read line by line."""

    def __init__(self, argv: list[str], *, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait_for(self, pattern: str, *, timeout: float = 30.0) -> re.Match[str]:
        """Wait until a line matches ``pattern`` (a regular expression); that line's match."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)  # the end stays visible to later waits
                break
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s; output:\n"
                             + "\n".join(self.lines))

    def finish(self, *, timeout: float = 30.0) -> int:
        """Wait for the command to exit by itself and for its output to be read; its exit status."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(self.lines[-1])
        self._queue.put(None)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Spawned]]:
    """Start commands whose output a test reads as it comes; whatever still runs is killed after."""
    started: list[Spawned] = []

    def start(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Spawned:
        started.append(Spawned(argv, cwd=cwd, env=env))
        return started[-1]

    yield start
    for spawned in started:
        spawned.kill()
