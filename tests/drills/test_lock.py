"""The environment lock against a lab: a Lease per region's cluster, taken, renewed, refused to a
second drill, taken over when stale, lost, asked to abort, and released."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch

from drills.cli import main
from drills.environment import Environment
from drills.lab.clock import LabClock
from drills.lab.kube.api import ApiServer, start_api_server
from drills.lab.kube.store import NAMESPACES, Store
from drills.labprocess import LabProcess
from drills.lock import (
    ABORT_ANNOTATION,
    LEASE_NAME,
    LEASE_NAMESPACE,
    RUN_ANNOTATION,
    EnvironmentLocked,
    LockError,
    LockOwner,
    LockTiming,
    hold,
    request_abort,
)

pytestmark = pytest.mark.lab

FAST = LockTiming(duration_s=30, renew_s=0.2, check_s=0.1, retry_s=0.1)
"""Renewed five times a second and read ten, so that a test sees renewals, losses and aborts at once."""
RUN = "20261201T060000Z-us-outage-0001"


@pytest.fixture(scope="module")
def leases(lab_env: Environment) -> Iterator[dict[str, k8s.CoordinationV1Api]]:
    """Each region's Lease API, for looking at and meddling with the lock as another party would."""
    clients = {name: k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context)
               for name, region in lab_env.regions.items()}
    yield {name: k8s.CoordinationV1Api(api) for name, api in clients.items()}
    for api in clients.values():
        api.close()


def _lease(api: k8s.CoordinationV1Api) -> k8s.V1Lease:
    lease: k8s.V1Lease = api.read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
    return lease


def _plant(api: k8s.CoordinationV1Api, holder: str, *, renewed_ago_s: float, process: str = "") -> None:
    """Make the lease held by ``holder``, last renewed ``renewed_ago_s`` ago, as another drill would."""
    try:
        lease = _lease(api)
    except k8s.ApiException:
        lease = api.create_namespaced_lease(LEASE_NAMESPACE,
                                            k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=LEASE_NAME)))
    lease.metadata.annotations = {RUN_ANNOTATION: "20261201T050000Z-zone-loss-beef",
                                  "drill.dev/scenario": "zone-loss",
                                  "drill.dev/started": "2026-12-01T05:00:00Z",
                                  "drill.dev/process": process}
    lease.spec = k8s.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=30,
                                 renew_time=datetime.now(UTC) - timedelta(seconds=renewed_ago_s))
    api.replace_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, lease)


def _free(api: k8s.CoordinationV1Api) -> None:
    lease = _lease(api)
    lease.metadata.annotations = None
    lease.spec = k8s.V1LeaseSpec()
    api.replace_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE, lease)


async def test_a_drill_holds_every_region_and_gives_it_back(
        lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api]) -> None:
    owner = LockOwner(run_id=RUN, scenario="us-outage", identity="alice@a (pid 1)")
    async with hold(lab_env, owner, timing=FAST) as lock:
        assert lock.regions == ["eu", "us"]
        for api in leases.values():
            lease = await asyncio.to_thread(_lease, api)
            assert lease.spec.holder_identity == "alice@a (pid 1)"
            assert lease.spec.lease_duration_seconds == 30
            assert lease.metadata.annotations[RUN_ANNOTATION] == owner.run_id
            assert lease.metadata.annotations["drill.dev/scenario"] == "us-outage"
            assert lease.metadata.annotations["drill.dev/started"].endswith("Z")
        assert "held in eu, us as alice@a (pid 1)" in lock.describe()
    for api in leases.values():
        lease = await asyncio.to_thread(_lease, api)
        assert lease.spec.holder_identity is None
        assert not lease.metadata.annotations


async def test_the_lease_is_renewed_while_the_drill_lives(
        lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api]) -> None:
    api = leases["us"]
    owner = LockOwner(run_id="run-renewed", scenario="s", identity="alice@a (pid 1)")
    async with hold(lab_env, owner, timing=FAST):
        taken = await asyncio.to_thread(_lease, api)

        def renewed() -> datetime:
            for event in watch.Watch().stream(api.list_namespaced_lease, LEASE_NAMESPACE,
                                              resource_version=taken.metadata.resource_version,
                                              timeout_seconds=10):
                renewal = event["object"].spec.renew_time
                if renewal > taken.spec.renew_time:
                    return renewal
            raise AssertionError("the lease was not renewed")

        later = await asyncio.to_thread(renewed)
    assert later - taken.spec.renew_time < timedelta(seconds=5)


async def test_a_second_drill_is_refused_naming_the_holder(
        lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api]) -> None:
    first = LockOwner(run_id=RUN, scenario="us-outage", identity="alice@a (pid 1)")
    second = LockOwner(run_id="20261201T060100Z-zone-loss-0002", scenario="zone-loss",
                       identity="bob@b (pid 2)")
    async with hold(lab_env, first, timing=FAST):
        with pytest.raises(EnvironmentLocked) as refused:
            async with hold(lab_env, second, timing=FAST):
                pytest.fail("two drills held one environment")
        message = str(refused.value)
        assert message.startswith(f"environment {lab_env.name} is held by alice@a (pid 1) (run "
                                  f"{RUN}, scenario us-outage, since ")
        assert re.search(r"renewed \d s ago\)", message)
        assert f"drill abort --env {lab_env.path}" in message
        assert refused.value.exit_code == 2
        # The first drill keeps its lock.
        for api in leases.values():
            assert (await asyncio.to_thread(_lease, api)).spec.holder_identity == "alice@a (pid 1)"


async def test_a_refusal_in_one_region_gives_back_the_regions_already_taken(
        lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api]) -> None:
    await asyncio.to_thread(_plant, leases["us"], "carol@c (pid 3)", renewed_ago_s=5)
    try:
        with pytest.raises(EnvironmentLocked, match=r"held by carol@c \(pid 3\) \(.*renewed [5-9] s ago\)"):
            async with hold(lab_env, LockOwner(run_id="r", scenario="s")):
                pytest.fail("the lock was taken from a live holder")
        eu = await asyncio.to_thread(_lease, leases["eu"])
        assert eu.spec.holder_identity is None  # eu was taken first (name order), then given back
    finally:
        await asyncio.to_thread(_free, leases["us"])


async def test_a_stale_lock_is_taken_over_loudly(
        lab: LabProcess, lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api],
        capsys: pytest.CaptureFixture[str]) -> None:
    await asyncio.to_thread(_plant, leases["us"], "dave@d (pid 4)", renewed_ago_s=31)
    # Nobody to abort: drill abort says whose lease is there and that its drill has stopped.
    assert await asyncio.to_thread(main, ["abort", "--env", str(lab.environment_file)]) == 2
    said = capsys.readouterr().err
    assert "no live drill holds environment lab's lock (region us: dave@d (pid 4) (run " in said
    assert "not renewed in time: its drill has stopped (drill recover)" in said
    before = await asyncio.to_thread(_lease, leases["us"])
    warnings: list[str] = []
    owner = LockOwner(run_id="run-takeover", scenario="s", identity="alice@a (pid 1)")
    async with hold(lab_env, owner, timing=FAST, warn=warnings.append) as lock:
        taken = await asyncio.to_thread(_lease, leases["us"])
        assert taken.spec.holder_identity == "alice@a (pid 1)"
        assert taken.spec.lease_transitions == (before.spec.lease_transitions or 0) + 1
        assert taken.metadata.annotations[RUN_ANNOTATION] == "run-takeover"
        assert "; taken over when stale: in us from dave@d (pid 4)" in lock.describe()
    assert len(warnings) == 1
    assert warnings[0].startswith("WARNING: taking over the stale lock of environment")
    assert "dave@d (pid 4) (run 20261201T050000Z-zone-loss-beef, scenario zone-loss" in warnings[0]
    assert re.search(r"renewed 3\d s ago\), which stopped renewing it", warnings[0])


async def test_a_lock_taken_by_someone_else_stops_the_drill(
        lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api]) -> None:
    stopped = asyncio.Event()
    reasons: list[str] = []
    owner = LockOwner(run_id="run-lost", scenario="s", identity="alice@a (pid 1)")
    try:
        async with hold(lab_env, owner, timing=FAST) as lock:
            lock.on_stop(lambda why: (reasons.append(why), stopped.set()))
            await asyncio.to_thread(_plant, leases["us"], "erin@e (pid 5)", renewed_ago_s=0)
            await asyncio.wait_for(stopped.wait(), 10)
        assert reasons[0].startswith("the environment lock was lost in region us: it is now held by erin@e")
        # Erin's lease is hers: giving back ours left it alone.
        assert (await asyncio.to_thread(_lease, leases["us"])).spec.holder_identity == "erin@e (pid 5)"
    finally:
        await asyncio.to_thread(_free, leases["us"])


async def test_drill_abort_through_the_lease_stops_the_holder_which_keeps_its_lock(
        lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api]) -> None:
    assert await request_abort(lab_env, "frank@f") == []  # nobody holds it: nobody to ask
    stopped = asyncio.Event()
    reasons: list[str] = []
    owner = LockOwner(run_id="run-aborted", scenario="s", identity="alice@a (pid 1)")
    async with hold(lab_env, owner, timing=FAST) as lock:
        lock.on_stop(lambda why: (reasons.append(why), stopped.set()))
        assert await request_abort(lab_env, "frank@f", run="20261201") == []  # another run: left alone
        asked = await request_abort(lab_env, "frank@f", run="run-ab")
        assert [(h.region, h.run_id) for h in asked] == [("eu", "run-aborted"), ("us", "run-aborted")]
        await asyncio.wait_for(stopped.wait(), 10)
        assert reasons == [reasons[0]]
        assert reasons[0].startswith("abort requested through the environment lock (by frank@f at ")
        # Rolling back still needs the lock: it is kept until released.
        held = await asyncio.to_thread(_lease, leases["us"])
        assert held.spec.holder_identity == "alice@a (pid 1)"
        assert ABORT_ANNOTATION in held.metadata.annotations
    released = await asyncio.to_thread(_lease, leases["us"])
    assert released.spec.holder_identity is None
    assert ABORT_ANNOTATION not in (released.metadata.annotations or {})


async def test_a_killed_holder_on_this_host_is_taken_over_at_once(
        lab_env: Environment, leases: dict[str, k8s.CoordinationV1Api]) -> None:
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    await asyncio.to_thread(_plant, leases["us"], "grace@g (pid 6)", renewed_ago_s=1,
                            process=f"{socket.gethostname()}:{dead.pid}")
    warnings: list[str] = []
    owner = LockOwner(run_id="run-after-kill", scenario="s")
    async with hold(lab_env, owner, timing=FAST, warn=warnings.append):
        taken = await asyncio.to_thread(_lease, leases["us"])
        assert taken.metadata.annotations[RUN_ANNOTATION] == "run-after-kill"
    assert len(warnings) == 1
    assert "from grace@g (pid 6) (run 20261201T050000Z-zone-loss-beef" in warnings[0]
    assert "whose process on this host is gone" in warnings[0]


@pytest.fixture
async def lone_api(tmp_path: Path) -> AsyncIterator[tuple[Store, ApiServer, Environment]]:
    """One region's API server in this process (so that a test can stop it), and an environment on it."""
    store = Store(LabClock(1.0))
    server = await start_api_server(store, host="127.0.0.1", token="secret")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server.url}\n"
        "users:\n- name: u\n  user:\n    token: secret\ncontexts:\n- name: c\n  context:\n    cluster: c\n"
        "    user: u\ncurrent-context: c\n")
    env = Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "one-api", "path": str(tmp_path / "e.yaml"),
        "regions": {"us": {"kubeconfig": str(kubeconfig), "context": "c", "endpoint": "us",
                           "target": "us.example", "ingress": {"namespace": "i", "deployment": "i"}}},
        "trafficManager": {"fqdn": "shop.example", "nameservers": ["127.0.0.1:53"]}})
    yield store, server, env
    await server.close()


async def test_a_cluster_without_the_lock_namespace_refuses_the_drill(
        lone_api: tuple[Store, ApiServer, Environment]) -> None:
    _, _, env = lone_api
    with pytest.raises(LockError) as refused:
        async with hold(env, LockOwner(run_id="r", scenario="s")):
            pytest.fail("a lock was taken where it cannot be")
    assert str(refused.value) == (
        "region us: lease drill/drill-lock: namespace drill not found; the lock lives there (kubectl apply "
        "-f deploy/rbac/ creates it, or: kubectl create namespace drill)")


async def test_renewals_failing_until_the_lease_would_lapse_stop_the_drill(
        lone_api: tuple[Store, ApiServer, Environment]) -> None:
    store, server, env = lone_api
    store.create(NAMESPACES, {"metadata": {"name": LEASE_NAMESPACE}})
    # A 1-second lease: lost once 0.8 s pass without a renewal, before it could lapse.
    timing = LockTiming(duration_s=1, renew_s=0.2, check_s=0.1, retry_s=0.1)
    stopped = asyncio.Event()
    reasons: list[str] = []
    warnings: list[str] = []
    async with hold(env, LockOwner(run_id="run-cut-off", scenario="s"), timing=timing,
                    warn=warnings.append) as lock:
        lock.on_stop(lambda why: (reasons.append(why), stopped.set()))
        await server.close()  # the API server stops answering
        await asyncio.wait_for(stopped.wait(), 10)
    assert re.fullmatch(r"the environment lock was lost in region us: not renewed for \d+ s \(.+\), it would "
                        r"lapse before the next try", reasons[0]), reasons
    assert any(w.startswith("the lock in region us could not be read or renewed") for w in warnings)
    assert any(w.startswith("the lock in region us could not be released") for w in warnings)
