"""kubectl against the region's API server, over HTTPS as the lab serves it: what it prints, what it does.

kubectl runs as a subprocess while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from apiseed import NODE_NAMES, WEB_PODS, refresh_pdb_status, running_pod
from kubectlrun import AsyncKubectl, start_kubectl

from drills.lab.kube.api import ApiServer
from drills.lab.kube.store import DEPLOYMENTS, NODES, PDBS, PODS, Change, Store


def _table(text: str) -> list[list[str]]:
    """kubectl's columns: cells are separated by at least two spaces (or one before a wide cell)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


async def test_get_nodes(kubectl: AsyncKubectl, store: Store) -> None:
    store.mutate(NODES, None, NODE_NAMES[1], lambda n: n["spec"].update(unschedulable=True))
    store.mutate(NODES, None, NODE_NAMES[2], lambda n: n["status"]["conditions"][0].update(status="False"))
    code, out, err = await kubectl("get", "nodes")
    assert code == 0, err
    rows = _table(out)
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [(r[0], r[1], r[2], r[4]) for r in rows[1:4]] == [
        (NODE_NAMES[0], "Ready", "agent", "v1.32.0"),
        (NODE_NAMES[1], "Ready,SchedulingDisabled", "agent", "v1.32.0"),
        (NODE_NAMES[2], "NotReady", "agent", "v1.32.0")]
    assert all(re.fullmatch(r"\d+s", r[3]) for r in rows[1:])
    assert len(rows) == 1 + len(NODE_NAMES)

    code, out, _ = await kubectl("get", "nodes", "-o", "wide", "-l", "topology.kubernetes.io/zone=eastus-3")
    rows = _table(out)
    assert rows[0][5:] == ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert rows[1][0] == NODE_NAMES[4]
    assert rows[1][5:] == ["10.224.0.8", "<none>", "Ubuntu 22.04.5 LTS", "5.15.0-1079-azure",
                           "containerd://1.7.25"]


async def test_get_pods_wide_in_all_namespaces_and_deployments(kubectl: AsyncKubectl, store: Store) -> None:
    store.mutate(PODS, "shop", WEB_PODS[0],
                 lambda p: p["metadata"].update(deletionTimestamp="2026-11-22T03:18:30Z",
                                                deletionGracePeriodSeconds=30))
    code, out, err = await kubectl("get", "pods", "-o", "wide", "-A")
    assert code == 0, err
    rows = _table(out)
    assert rows[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                       "NOMINATED NODE", "READINESS GATES"]
    web = {r[1]: r for r in rows if r[0] == "shop"}
    assert [web[name][2:5] for name in WEB_PODS] == [["1/1", "Terminating", "0"], ["1/1", "Running", "0"],
                                                     ["1/1", "Running", "0"]]
    assert web[WEB_PODS[1]][6:] == ["10.244.2.10", NODE_NAMES[2], "<none>", "<none>"]
    assert sum(1 for r in rows if r[0] == "kube-system") == len(NODE_NAMES)

    code, out, err = await kubectl("get", "deploy", "-n", "shop")
    assert code == 0, err
    rows = _table(out)
    assert rows[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[1][:4] == ["web", "3/3", "3", "3"]


async def test_cordon_uncordon_and_scale(kubectl: AsyncKubectl, store: Store) -> None:
    node = NODE_NAMES[3]
    assert await kubectl("cordon", node) == (0, f"node/{node} cordoned\n", "")
    assert store.get(NODES, None, node)["spec"]["unschedulable"] is True
    assert await kubectl("cordon", node) == (0, f"node/{node} already cordoned\n", "")
    assert await kubectl("uncordon", node) == (0, f"node/{node} uncordoned\n", "")
    assert "unschedulable" not in store.get(NODES, None, node)["spec"]

    assert await kubectl("scale", "deploy/web", "-n", "shop", "--replicas=5") == (
        0, "deployment.apps/web scaled\n", "")
    assert store.get(DEPLOYMENTS, "shop", "web")["spec"]["replicas"] == 5


async def test_drain_waits_for_the_disruption_budget(tls_server: tuple[ApiServer, Path], tmp_path: Path,
                                                     store: Store) -> None:
    loop = asyncio.get_running_loop()
    exits: list[asyncio.TimerHandle] = []

    def kubelet(change: Change) -> None:
        """A bare kubelet: a pod marked for deletion is gone 100 ms later."""
        meta = change.object["metadata"]
        if change.resource == PODS and change.type == "MODIFIED" and meta.get("deletionTimestamp"):
            exits.append(loop.call_later(0.1, lambda: store.find(PODS, meta["namespace"], meta["name"])
                                         and store.delete(PODS, meta["namespace"], meta["name"])))

    store.on_change(kubelet)
    store.mutate(PDBS, "shop", "web", lambda p: p["spec"].update(minAvailable=3))
    refresh_pdb_status(store, "web")
    process = await start_kubectl(tls_server[1], tmp_path, "drain", NODE_NAMES[0], "--ignore-daemonsets",
                           "--delete-emptydir-data", "--timeout=20s")
    assert process.stdout is not None
    assert process.stderr is not None
    refused = "Cannot evict pod as it would violate the pod's disruption budget."
    err_lines: list[str] = []
    while not any(refused in line for line in err_lines):
        line = await asyncio.wait_for(process.stderr.readline(), 15)
        assert line, f"kubectl ended without the 429 retry message: {err_lines}"
        err_lines.append(line.decode())
    assert store.get(PODS, "shop", WEB_PODS[0])["metadata"].get("deletionTimestamp") is None

    # A replacement becomes Ready elsewhere: the budget now allows one disruption.
    store.create(PODS, running_pod("web-6d4cf56db6-r3pl4", "shop", NODE_NAMES[3], "10.244.3.10",
                                   labels={"app": "web"}, owner=("ReplicaSet", "web-6d4cf56db6", "apps/v1")))
    refresh_pdb_status(store, "web")
    out, rest = await asyncio.wait_for(process.communicate(), 20)
    err = "".join(err_lines) + rest.decode()
    assert process.returncode == 0, err
    # kubectl says "evicting" on each attempt: the refused one and the one 5 s later that succeeds.
    assert out.decode().splitlines() == [
        f"node/{NODE_NAMES[0]} cordoned", *[f"evicting pod shop/{WEB_PODS[0]}"] * 2,
        f"pod/{WEB_PODS[0]} evicted", f"node/{NODE_NAMES[0]} drained"]
    assert "Warning: ignoring DaemonSet-managed Pods: kube-system/agent-1a" in err
    assert f'error when evicting pods/"{WEB_PODS[0]}" -n "shop" (will retry after 5s): {refused}' in err
    assert store.find(PODS, "shop", WEB_PODS[0]) is None
    assert store.get(PODS, "kube-system", "agent-1a")["metadata"].get("deletionTimestamp") is None
    assert store.get(NODES, None, NODE_NAMES[0])["spec"]["unschedulable"] is True
    for handle in exits:
        handle.cancel()


async def test_not_found_carries_details(kubectl: AsyncKubectl) -> None:
    """A NotFound Status names what is missing in ``details`` (empty for a path the server does not
    serve), as a real API server's does: kubectl debug tells a missing pod from a missing subresource by
    them. ``-v=8`` shows the body kubectl received."""
    cases = [
        (("get", "--raw", "/apis/apps/v1/widgets"), {}),
        (("get", "deployment", "nosuch", "-n", "shop"),
         {"name": "nosuch", "group": "apps", "kind": "deployments"}),
        (("create", "deployment", "x", "-n", "nowhere", "--image=busybox"),
         {"name": "nowhere", "kind": "namespaces"}),
    ]
    for args, details in cases:
        code, _, err = await kubectl(*args, "-v=8")
        assert code == 1, err
        logged = re.findall(r'"Response Body" body="(\{\\"kind\\":\\"Status\\".*)"$', err, re.M)
        statuses = [json.loads(json.loads(f'"{body}"')) for body in logged]
        assert [(s["reason"], s.get("details")) for s in statuses] == [("NotFound", details)], args
