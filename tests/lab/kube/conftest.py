"""Fixtures of the API server tests: a seeded store (:mod:`apiseed`) and its server, over HTTP or HTTPS;
the real clients against it (``kubectl``, and ``kube``: the official Python client); running clusters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from apiseed import TOKEN, kubeconfig, loopback, seed
from kubectlrun import AsyncKubectl, run_kubectl
from kubernetes import client, config

from drills.lab.certs import issue
from drills.lab.clock import LabClock
from drills.lab.kube.api import ApiServer, start_api_server
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.store import Store
from drills.lab.topology import DEFAULT, Topology


@pytest.fixture
def clock() -> LabClock:
    return LabClock(time_scale=1.0)


@pytest.fixture
def store(clock: LabClock) -> Store:
    store = Store(clock)
    seed(store)
    return store


@pytest.fixture
async def server(store: Store) -> AsyncIterator[ApiServer]:
    """The API server over plain HTTP (the ``kubernetes`` client sends its token over HTTP too)."""
    server = await start_api_server(store, host=loopback(), port=0, token=TOKEN)
    yield server
    await server.close()


@pytest.fixture
async def tls_server(store: Store, tmp_path: Path) -> AsyncIterator[tuple[ApiServer, Path]]:
    """The API server over HTTPS, as the lab serves it, and a kubeconfig that trusts it."""
    host = loopback()
    certificates = issue(tmp_path, [host])
    server = await start_api_server(store, host=host, port=0, token=TOKEN,
                                    ssl_context=certificates.server_context())
    yield server, kubeconfig(tmp_path / "kubeconfig", server.url, ca_pem=certificates.ca_pem())
    await server.close()


@pytest.fixture
def kubectl(tls_server: tuple[ApiServer, Path], tmp_path: Path) -> AsyncKubectl:
    """kubectl against the ``tls_server`` with a fresh cache: ``await kubectl(*args, stdin=None)`` is
    (exit code, stdout, stderr)."""
    _, config_file = tls_server

    async def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return await run_kubectl(config_file, tmp_path, *args, stdin=stdin)

    return run


@pytest.fixture
def kube(tls_server: tuple[ApiServer, Path]) -> Iterator[client.ApiClient]:
    """The Python client built from the ``tls_server``'s kubeconfig, as drill's targets build theirs; call
    it through :func:`pyclient.call`."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(tls_server[1]), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        yield api


CLUSTER_SCALE = 1000.0
"""The controllers' tests run the lab clock 1000 times faster: a 20 s pod start is 20 ms."""


@pytest.fixture
async def make_cluster() -> AsyncIterator[Callable[..., Awaitable[Cluster]]]:
    """Start the ``us`` region of a topology (the default unless given) and wait until it settles;
    every cluster started is closed afterwards."""
    started: list[Cluster] = []

    async def make(topology: Topology = DEFAULT) -> Cluster:
        cluster = Cluster("us", topology, clock=LabClock(CLUSTER_SCALE))
        started.append(cluster)
        await cluster.start()
        await cluster.settled(within=3.0 * CLUSTER_SCALE)
        return cluster

    yield make
    for cluster in started:
        await cluster.close()
