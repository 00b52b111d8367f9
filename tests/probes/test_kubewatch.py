"""The replicas probe's watches end with it: no watch thread outlives :meth:`DeploymentWatch.aclose`,
on a lab, and on an API server that holds a watch open and sends nothing (no bookmarks, no events,
not even its response's headers)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from kubeservers import SilentApi
from probeservers import environment, targets_for, write_kubeconfig

from drills.environment import Environment
from drills.watchstream import STOP_BOUND_S
from probes.kubewatch import DeploymentWatch

WATCHES = 3
"""A DeploymentWatch watches the deployment, its pods and the nodes."""


def _threads(label: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(label) and t.is_alive()]


@pytest.mark.parametrize("silence", ["after the headers", "before the headers"])
async def test_a_stopped_watch_ends_its_threads_on_a_server_that_sends_nothing(tmp_path: Path,
                                                                              silence: str) -> None:
    with SilentApi(silence, watches=WATCHES) as api:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server=api.url)
        with targets_for(environment(nameservers=["127.0.0.1:9"], kubeconfig=kubeconfig)) as targets:
            watch = DeploymentWatch(targets.kube("us"), "replicas silent", namespace="shop", deployment="web")
            watch.start()
            assert await asyncio.to_thread(api.held.wait, 30), "the watches never started"
            assert len(_threads("replicas silent")) == WATCHES
            started = time.monotonic()
            await watch.aclose()
            took = time.monotonic() - started
            # aclose waits STOP_BOUND_S for them; a machine too loaded to schedule a thread in time may
            # need a moment more, which this allows (the time is measured, not asserted: bench/ is for
            # that), but a thread must never outlive its watch.
            gone = await asyncio.to_thread(_gone, "replicas silent", STOP_BOUND_S)
            assert gone, _threads("replicas silent")
            # ...and their connections are closed (the server notices a moment later).
            assert await asyncio.to_thread(api.released.wait, 2.0)
    print(f"measured: watches silent {silence} stopped, threads gone in {took:.2f} s")


def _gone(label: str, within: float) -> bool:
    """Whether the threads named ``label`` have all ended within ``within`` seconds."""
    deadline = time.monotonic() + within
    while _threads(label) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _threads(label)


@pytest.mark.lab
async def test_no_watch_thread_outlives_its_watch_on_a_lab(lab_env: Environment) -> None:
    with targets_for(lab_env) as targets:
        watch = DeploymentWatch(targets.kube("eu"), "replicas lab", namespace="shop", deployment="web")
        watch.start()
        for _ in range(600):  # the watches' first lists; nothing to await but the samples
            if watch.take()["ready"] is not None:
                break
            await asyncio.sleep(0.05)
        assert watch.take()["ready"] == 3
        assert len(_threads("replicas lab")) == WATCHES
        started = time.monotonic()
        await watch.aclose()
        took = time.monotonic() - started
        gone = await asyncio.to_thread(_gone, "replicas lab", STOP_BOUND_S)
        assert gone, _threads("replicas lab")
    print(f"measured: watches on a lab stopped, threads gone in {took:.3f} s")
