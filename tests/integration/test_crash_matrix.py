"""The crash matrix: a real ``drill run`` killed with SIGKILL at many points of a drill, then ``drill
recover``; each time both regions of the lab, Kubernetes and Azure alike, are as they were before the
drill (:func:`drillrun.world_snapshot`).

The points (14): during the pre-flight (every fault prepared, nothing changed), right after each fault
kind the lab supports is applied, during a drain's evictions, during a condition wait, inside a
parallel step, in the middle of the rollback and during failback. Each is chosen by watching the run's
journal (``events.jsonl``) or its output for one event of one step (the drain's: the lab, for its first
eviction), and the journal is checked to show the run was cut there. One lab serves every point:
each recovery must leave it as it found it, which is what is being tested.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from drillrun import ROOT, settled_world, world_snapshot
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from drills.cli import main
from drills.environment import Environment
from drills.journal import pending_undos, read_journal
from drills.labprocess import LabProcess

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab

PROBES = "  web_us: {kind: replicas, cluster: us, namespace: shop, deployment: web, every: 5s}\n"
DNS_PROBE = "  dns: {kind: dns, every: 2s}\n"
HOLD = "  - wait: 10m\n"
"""After the step the kill aims at: the drill waits there, so the kill lands before anything else."""


@dataclass(frozen=True)
class KillPoint:
    """Where a drill is killed: its steps, and the event after which the kill comes."""

    steps: str
    event: str
    """A journal event (``fault_applied``...); prefixed ``out:``, a timeline event the drill prints;
    ``evicted``: the first pod of namespace ``step`` the lab marks for deletion."""
    step: str | None = None
    probes: str = PROBES
    check: Callable[[list[str], list[str]], bool] = lambda events, pending: True
    """What the journal must show at the kill (its events as ``event:step``, its pending steps)."""


def _fault(step: str, fault: str, **params: str) -> str:
    """A fault step, as a line of the scenario's ``steps:``."""
    return f"  - {{id: {step}, fault: {fault}" + "".join(f", {k}: {v}" for k, v in params.items()) + "}\n"


def _applied(step: str, fault: str, **params: str) -> KillPoint:
    """Killed right after the fault is applied (the drill holds there)."""
    return KillPoint(_fault(step, fault, **params) + HOLD, "fault_applied", step)


def _before(event: str) -> Callable[[list[str], list[str]], bool]:
    """The check of a kill that must come before ``event`` (``event:step``) was journaled."""
    return lambda events, pending: event not in events


WEB = {"namespace": "shop", "selector": "app=web"}
POINTS = {
    # The pre-flight prepares every fault right after the steady state; the first fault waits behind a
    # hold, so that however late the kill comes, nothing was changed yet.
    "pre-flight": KillPoint(HOLD + _fault("c1", "cordon-zone", cluster="us", zone="zone-1"),
                            "out:steady_state", check=_before("fault_prepared:c1")),
    "cordon-zone": _applied("c1", "cordon-zone", cluster="us", zone="zone-1"),
    "drain evictions": KillPoint(_fault("d1", "drain-nodes", cluster="us", zone="zone-1") + HOLD,
                                 "evicted", "shop", check=_before("fault_applied:d1")),
    "kill-ingress": _applied("k1", "kill-ingress", cluster="us"),
    "delete-pods": _applied("p1", "delete-pods", cluster="us", **WEB),
    "isolate": _applied("i1", "isolate", cluster="eu", **WEB),
    "disable-endpoint": _applied("e1", "disable-endpoint", region="us"),
    "zone-down": _applied("z1", "zone-down", cluster="us", zone="zone-2"),
    "region-failover": _applied("f1", "region-failover", to="eu"),
    "region-outage": _applied("o1", "region-outage", region="us"),
    "condition wait": KillPoint(_fault("c2", "cordon-zone", cluster="us", zone="zone-2")
                                + "  - {id: w1, wait: web_us.ready >= 9, timeout: 10m}\n",
                                "out:step_started", "w1", check=lambda events, pending: pending == ["c2"]),
    "parallel steps": KillPoint("  - parallel:\n" + "".join(
        "    " + line for line in (_fault("z3", "zone-down", cluster="us", zone="zone-3"),
                                   _fault("p2", "delete-pods", cluster="eu", **WEB),
                                   _fault("c3", "cordon-zone", cluster="eu", zone="zone-1"))) + HOLD,
        "fault_applied", "c3"),
    # Killed once the newest fault is undone, while the VMs of the next are starting (45 lab seconds).
    "rollback": KillPoint(_fault("c1", "cordon-zone", cluster="us", zone="zone-1")
                          + _fault("z2", "zone-down", cluster="us", zone="zone-2")
                          + _fault("k1", "kill-ingress", cluster="eu") + "  - wait: 5s\n",
                          "fault_reverted", "k1", check=lambda events, pending: pending == ["c1", "z2"]),
    "failback": KillPoint(_fault("k1", "kill-ingress", cluster="us")
                          + "  - {wait: dns.answer == eu, timeout: 10m}\n",
                          "fault_reverted", "k1", probes=PROBES + DNS_PROBE,
                          check=lambda events, pending: not pending),
}


@pytest.mark.parametrize("point", POINTS)
def test_a_drill_killed_here_is_recovered_to_the_world_before_it(
        point: str, lab: LabProcess, lab_env: Environment, tmp_path: Path, spawn: Callable[..., Spawned],
        capsys: pytest.CaptureFixture[str]) -> None:
    before = world_snapshot(lab_env)
    runs = kill_drill(POINTS[point], lab, lab_env, tmp_path, spawn)
    assert main(["recover", "--runs-dir", str(runs)]) == 0, capsys.readouterr().out
    assert settled_world(lab_env, before) == before


def kill_drill(kill: KillPoint, lab: LabProcess, lab_env: Environment, tmp_path: Path,
               spawn: Callable[..., Spawned]) -> Path:
    """Run a drill of ``kill``'s steps on ``lab`` and SIGKILL it at ``kill``'s point; the runs directory
    (its journal checked to show the run was cut there)."""
    scenario = tmp_path / "crash.yaml"
    scenario.write_text(f"apiVersion: drill/v1\nname: crash\nprobes:\n{kill.probes}steps:\n{kill.steps}")
    runs = tmp_path / "runs"
    us = lab_env.regions["us"]
    argv = [sys.executable, "-m", "drills", "run", str(scenario), "--env", str(lab.environment_file),
            "--runs-dir", str(runs), "--trials", "1"]
    with k8s_config.new_client_from_config(config_file=us.kubeconfig, context=us.context) as api:
        pods = k8s.CoreV1Api(api)
        evicted = kill.event == "evicted"
        since = pods.list_namespaced_pod(kill.step).metadata.resource_version if evicted else ""
        drill = spawn(argv, cwd=ROOT)
        if evicted:
            _wait_for_eviction(pods, kill.step or "", since, timeout=60)
        elif kill.event.startswith("out:"):
            step = rf" \[{kill.step}\]" if kill.step else ""
            drill.wait_for(rf" {kill.event[4:]}{step}", timeout=60)
        else:
            _wait_for_journal(runs, kill.event, kill.step, drill, timeout=60)
        drill.kill()

    [run_dir] = list(runs.iterdir())
    entries = read_journal(run_dir / "events.jsonl")
    events = [f"{e.event}:{e.fields.get('step')}" for e in entries]
    pending = sorted(p.step for p in pending_undos(entries))
    assert kill.check(events, pending), (events, pending)
    assert "run_ended:None" not in events
    return runs


def _wait_for_eviction(pods: k8s.CoreV1Api, namespace: str, since: str, *, timeout: float) -> None:
    """Return when the first pod of ``namespace`` is marked for deletion after ``since`` (a watch)."""
    watch = k8s_watch.Watch()
    for change in watch.stream(pods.list_namespaced_pod, namespace, resource_version=since,
                               timeout_seconds=int(timeout)):
        if change["type"] == "DELETED" or change["object"].metadata.deletion_timestamp is not None:
            watch.stop()
            return
    raise AssertionError(f"no pod of {namespace} was evicted within {timeout:g} s")


def _wait_for_journal(runs: Path, event: str, step: str | None, drill: Spawned, *, timeout: float) -> None:
    """Return as soon as the run's journal has ``event`` for ``step``. The journal is a file: it is
    read again every 5 ms (a kill must come while the drill is still in the step)."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        journals = list(runs.glob("*/events.jsonl"))
        if journals:
            lines = journals[0].read_bytes().split(b"\n")
            for raw in lines[seen:-1]:
                entry = json.loads(raw)
                if entry["event"] == event and (step is None or entry.get("step") == step):
                    return
            seen = max(seen, len(lines) - 1)
        if drill.process.poll() is not None:
            break
        time.sleep(0.005)
    raise AssertionError(f"the journal never showed {event} of {step}; the drill said:\n"
                         + "\n".join(drill.lines))
