"""The watch a drain waits on (:class:`drills.faults.kube.PodsGone`) ends with it, also on an API server
that holds the watch open and sends nothing: its connection is closed within a bounded time, so that
no worker thread stays blocked on it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from kubernetes.client import V1ListMeta, V1PodList
from kubeservers import SilentApi

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.faults.kube import PodsGone
from drills.targets import Targets
from drills.watchstream import STOP_BOUND_S


def _environment(tmp_path: Path, server: str) -> Environment:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n"
                          f"clusters:\n- name: us\n  cluster: {{server: '{server}'}}\n"
                          "contexts:\n- name: ctx-us\n  context: {cluster: us, user: test}\n"
                          "users:\n- name: test\n  user: {token: test}\ncurrent-context: ctx-us\n")
    return Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "silent", "timeScale": 60,
        "regions": {"us": {"context": "ctx-us", "kubeconfig": str(kubeconfig),
                           "ingress": {"namespace": "i", "deployment": "i"},
                           "endpoint": "us", "target": "us.example"}},
        "trafficManager": {"fqdn": "shop.example", "nameservers": ["127.0.0.1:9"]},
        "path": str(tmp_path / "environment.yaml"),
    })


@pytest.mark.parametrize("silence", ["after the headers", "before the headers"])
async def test_a_drains_pod_watch_ends_on_a_server_that_sends_nothing(tmp_path: Path, silence: str) -> None:
    with SilentApi(silence, watches=1) as api:
        env = _environment(tmp_path, api.url)
        targets = Targets(env, ScenarioClock(env.time_scale))
        try:
            listed = V1PodList(metadata=V1ListMeta(resource_version="1"), items=[])
            async with PodsGone(targets.kube("us"), "us", "node-1", listed):
                assert await asyncio.to_thread(api.held.wait, 30), "the watch never started"
                started = time.monotonic()
            took = time.monotonic() - started
            closed = await asyncio.to_thread(api.released.wait, STOP_BOUND_S)
            assert closed, "the watch's connection stayed open"
        finally:
            targets.close()
    assert took <= STOP_BOUND_S
    print(f"measured: a pod watch silent {silence} ended in {took:.2f} s")
