"""``drill recover``: undoing what a crashed run left, and saying clearly when it cannot."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from drills.cli import main
from drills.clock import ScenarioClock
from drills.environment import load_environment
from drills.errors import EnvironmentUnreachable, FaultError
from drills.faults.base import Undo
from drills.faults.compute import parse_provider_id
from drills.faults.nodes import CordonZone
from drills.journal import Journal, read_journal
from drills.recover import needs_recovery, recover, revert_with_retries
from drills.targets import Targets

UNDO = Undo(fault="kill-ingress", region="us", summary="scale ingress to 0",
            objects=["us/Deployment/ingress-nginx/ingress-nginx-controller"],
            data={"namespace": "ingress-nginx", "deployment": "ingress-nginx-controller", "replicas": 2})


class _Flaky:
    """A fault whose revert fails ``failures`` times, transiently or not."""

    Params: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self, failures: int, *, transient: bool) -> None:
        self.failures = failures
        self.transient = transient
        self.calls = 0

    async def revert(self, targets: Any, undo: Undo) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise FaultError(f"try {self.calls} failed", transient=self.transient)


async def test_a_transient_failure_is_retried_and_a_permanent_one_is_not() -> None:
    flaky = _Flaky(2, transient=True)
    assert await revert_with_retries(flaky, None, UNDO, backoff_s=0) == (3, None)  # type: ignore[arg-type]
    stuck = _Flaky(5, transient=True)
    tries, error = await revert_with_retries(stuck, None, UNDO, backoff_s=0)  # type: ignore[arg-type]
    assert (tries, str(error)) == (3, "try 3 failed")
    refused = _Flaky(5, transient=False)
    tries, error = await revert_with_retries(refused, None, UNDO, backoff_s=0)  # type: ignore[arg-type]
    assert (tries, str(error)) == (1, "try 1 failed")


def _crashed_run(runs_dir: Path, environment: Path, *, name: str = "20261122T031800Z-us-outage-3fa2") -> Path:
    """A run whose runner died after injecting a fault: prepared and applied, never reverted."""
    run_dir = runs_dir / name
    with Journal(run_dir / "events.jsonl", ScenarioClock(60.0)) as journal:
        journal.write("run_started", scenario="us-outage.yaml", environment=str(environment), run_dir=run_dir,
                      time_scale=60.0, rollback="auto")
        journal.write("fault_prepared", step="s1", undo=UNDO, params={"cluster": "us"})
        journal.write("fault_applied", step="s1")
    return run_dir


def _environment(folder: Path, *, server: str, pid: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kubeconfig").write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: us, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: lab-us, context: {{cluster: us, user: u}}}}]
current-context: lab-us
""")
    lab = f"lab: {{groundTruth: gt.jsonl, pid: {pid}}}\n" if pid is not None else ""
    path = folder / "environment.yaml"
    path.write_text(f"""apiVersion: drill/v1
kind: Environment
name: test
timeScale: 60
regions:
  us:
    kubeconfig: kubeconfig
    context: lab-us
    ingress: {{namespace: ingress-nginx, deployment: ingress-nginx-controller}}
    endpoint: us
    target: us.endpoints.drill.test
trafficManager: {{fqdn: shop.trafficmanager.net, nameservers: ["127.0.0.1:53"]}}
{lab}""")
    return path


async def test_a_lab_that_is_gone_is_said_so_and_nothing_is_written(tmp_path: Path) -> None:
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    run_dir = _crashed_run(tmp_path / "runs", _environment(tmp_path / "lab", server="http://127.0.0.1:9",
                                                           pid=dead.pid))
    before = read_journal(run_dir / "events.jsonl")
    with pytest.raises(EnvironmentUnreachable, match=f"pid {dead.pid}.* no longer running"):
        await recover(run_dir)
    assert read_journal(run_dir / "events.jsonl") == before
    assert needs_recovery(run_dir)


async def test_a_missing_environment_file_is_unreachable(tmp_path: Path) -> None:
    run_dir = _crashed_run(tmp_path / "runs", tmp_path / "gone" / "environment.yaml")
    with pytest.raises(EnvironmentUnreachable, match=r"environment file .* is gone"):
        await recover(run_dir)


def test_the_command_exits_2_when_nothing_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 127.0.0.1:9 (discard) has no listener: the connection is refused at once.
    env = _environment(tmp_path / "env", server="http://127.0.0.1:9")
    runs = tmp_path / "runs"
    _crashed_run(runs, env)
    assert main(["recover", "--runs-dir", str(runs)]) == 2
    out = capsys.readouterr().out
    assert "cannot reach region us" in out
    assert "nothing was undone" in out


def test_the_command_finds_nothing_to_do_in_finished_runs(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "runs" / "finished"
    with Journal(run_dir / "events.jsonl", ScenarioClock()) as journal:
        journal.write("run_started", environment="/nowhere.yaml", time_scale=1.0)
        journal.write("fault_prepared", step="s1", undo=UNDO)
        journal.write("fault_reverted", step="s1")
        journal.write("run_ended", verdict="passed")
    assert not needs_recovery(run_dir)
    assert main(["recover", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "nothing to recover" in capsys.readouterr().out


def test_a_misspelt_run_id_is_refused_with_a_suggestion(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    _crashed_run(runs, tmp_path / "env.yaml", name="20261122T031800Z-us-outage-3fa2")
    assert main(["recover", "--runs-dir", str(runs), "20261122T031800Z-us-outage-3fa3"]) == 2
    assert "did you mean '20261122T031800Z-us-outage-3fa2'" in capsys.readouterr().err



_CRASHING_RUNNER = """
import asyncio, os, sys
from pathlib import Path
from drills.clock import ScenarioClock
from drills.environment import load_environment
from drills.environment import load_environment
from drills.faults.nodes import CordonZone
from drills.faults.workloads import KillIngress
from drills.journal import Journal
from drills.targets import Targets

async def main(env_file, run_dir):
    env = load_environment(env_file)
    clock = ScenarioClock(env.time_scale)
    targets = Targets(env, clock)
    journal = Journal(Path(run_dir) / "events.jsonl", clock)
    journal.write("run_started", scenario="crash.yaml", environment=env.path, run_dir=run_dir,
                  time_scale=env.time_scale, rollback="auto")
    steps = [("s1", CordonZone(CordonZone.Params(cluster="us", zone="zone-1"))),
             ("s2", KillIngress(KillIngress.Params(cluster="us")))]
    for step, fault in steps:
        undo = await fault.prepare(targets)
        journal.write("fault_prepared", step=step, undo=undo, params=fault.params)
        await fault.inject(targets, undo)
        journal.write("fault_applied", step=step)
    os._exit(1)  # the runner dies here: no rollback, no run_ended

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.lab
async def test_recover_undoes_what_a_crashed_runner_left(lab: Any, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    run_dir = runs / "20261122T031800Z-crash-0001"
    crashed = await asyncio.create_subprocess_exec(sys.executable, "-c", _CRASHING_RUNNER,
                                                   str(lab.environment_file), str(run_dir))
    assert await crashed.wait() == 1
    env = load_environment(lab.environment_file)
    targets = Targets(env, ScenarioClock(env.time_scale))
    kube = targets.kube("us")
    try:
        scale = await kube.call(kube.apps.read_namespaced_deployment_scale, "ingress-nginx-controller",
                                "ingress-nginx")
        assert scale.spec.replicas == 0
        assert needs_recovery(run_dir)

        assert await asyncio.to_thread(main, ["recover", "--runs-dir", str(runs)]) == 0
        out = capsys.readouterr().out
        assert "reverted  kill-ingress in us" in out
        assert "reverted  cordon-zone in us" in out

        scale = await kube.call(kube.apps.read_namespaced_deployment_scale, "ingress-nginx-controller",
                                "ingress-nginx")
        assert scale.spec.replicas == 2
        listed = await kube.call(kube.core.list_node)
        assert not any(n.spec and n.spec.unschedulable for n in listed.items)
        events = [(e.event, e.fields.get("step")) for e in read_journal(run_dir / "events.jsonl")]
        assert events[-5:] == [("revert_started", "s2"), ("fault_reverted", "s2"),
                               ("revert_started", "s1"), ("fault_reverted", "s1"), ("recovered", None)]
        assert not needs_recovery(run_dir)
        assert await asyncio.to_thread(main, ["recover", "--runs-dir", str(runs)]) == 0
        assert "nothing to recover" in capsys.readouterr().out
    finally:
        targets.close()


@pytest.mark.lab
async def test_what_cannot_be_undone_exits_3_saying_what_to_run_by_hand(
        lab: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ghost = Undo(fault="kill-ingress", region="us", summary="scale ingress-nginx/ghost from 2 replicas to 0",
                 objects=["us/Deployment/ingress-nginx/ghost"],
                 data={"namespace": "ingress-nginx", "deployment": "ghost", "replicas": 2})
    run_dir = tmp_path / "runs" / "ghost"
    with Journal(run_dir / "events.jsonl", ScenarioClock(60.0)) as journal:
        journal.write("run_started", environment=str(lab.environment_file), time_scale=60.0)
        journal.write("fault_prepared", step="s1", undo=ghost, params={"cluster": "us"})

    assert await asyncio.to_thread(main, ["recover", str(run_dir)]) == 3
    out = capsys.readouterr().out
    env = load_environment(lab.environment_file)
    assert "FAILED    kill-ingress in us: scale ingress-nginx/ghost from 2 replicas to 0 (1 attempt)" in out
    assert "error: scale us/ingress-nginx/ghost to 2: 404" in out
    assert (f"undo by hand: kubectl --kubeconfig {env.regions['us'].kubeconfig} --context lab-us "
            "-n ingress-nginx scale deployment/ghost --replicas=2") in out
    last = read_journal(run_dir / "events.jsonl")[-2:]
    assert [(e.event, e.fields.get("attempts")) for e in last] == [("revert_failed", 1), ("recovered", None)]
    assert last[1].fields["failed"] == ["s1"]
    assert needs_recovery(run_dir)


_CRASHING_AZURE_RUNNER = """
import asyncio, os, sys
from pathlib import Path
from drills.clock import ScenarioClock
from drills.environment import load_environment
from drills.faults.compute import ZoneDown
from drills.faults.trafficmanager import DisableEndpoint
from drills.journal import Journal
from drills.targets import Targets

async def main(env_file, run_dir):
    env = load_environment(env_file)
    clock = ScenarioClock(env.time_scale)
    targets = Targets(env, clock)
    journal = Journal(Path(run_dir) / "events.jsonl", clock)
    journal.write("run_started", scenario="crash.yaml", environment=env.path, run_dir=run_dir,
                  time_scale=env.time_scale, rollback="auto")
    steps = [("s1", DisableEndpoint(DisableEndpoint.Params(region="us"))),
             ("s2", ZoneDown(ZoneDown.Params(cluster="us", zone="zone-2")))]
    for step, fault in steps:
        undo = await fault.prepare(targets)
        journal.write("fault_prepared", step=step, undo=undo, params=fault.params)
        await fault.inject(targets, undo)
        journal.write("fault_applied", step=step)
    os._exit(1)  # the runner dies here: no rollback, no run_ended

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.lab
async def test_recover_undoes_the_azure_faults_a_crashed_runner_left(
        lab: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    run_dir = runs / "20261122T031800Z-crash-0002"
    crashed = await asyncio.create_subprocess_exec(sys.executable, "-c", _CRASHING_AZURE_RUNNER,
                                                   str(lab.environment_file), str(run_dir))
    assert await crashed.wait() == 1
    env = load_environment(lab.environment_file)
    targets = Targets(env, ScenarioClock(env.time_scale))
    tm = env.traffic_manager

    async def endpoint_status() -> str:
        profile = await targets.azure.traffic_manager().profiles.get(tm.resource_group, tm.profile)
        return next(e.properties.endpoint_status for e in profile.properties.endpoints if e.name == "us")

    async def stopped() -> set[str]:
        """The us nodes whose scale-set instance is stopped."""
        kube = targets.kube("us")
        vms = targets.azure.compute().virtual_machine_scale_set_vms
        found = set()
        for node in (await kube.call(kube.core.list_node)).items:
            vm = parse_provider_id(node.spec.provider_id)
            assert vm is not None
            view = await vms.get_instance_view(vm.resource_group, vm.scale_set, vm.instance_id)
            if any(s.code == "PowerState/stopped" for s in view.statuses):
                found.add(node.metadata.name)
        return found

    try:
        assert await endpoint_status() == "Disabled"
        assert await stopped() == {"aks-us-zone-2-0", "aks-us-zone-2-1"}
        assert await asyncio.to_thread(main, ["recover", "--runs-dir", str(runs)]) == 0
        out = capsys.readouterr().out
        assert "reverted  zone-down in us" in out
        assert "reverted  disable-endpoint in us" in out
        assert await endpoint_status() == "Enabled"
        assert await stopped() == set()
        assert not needs_recovery(run_dir)
    finally:
        await targets.aclose()


def _damaged_runs(runs: Path, environment: Path) -> dict[str, int]:
    """Three runs whose journals are damaged in the ways a disk or an editor damages them; the line of
    each damage, by run id."""
    started = ('{"seq":1,"at":"2026-11-22T03:18:00.000Z","t":0.0,"event":"run_started",'
               f'"environment":"{environment}","time_scale":60.0}}\n')
    prepared = ('{{"seq":2,"at":"2026-11-22T03:18:01.000Z","t":1.0,"event":"fault_prepared","step":"s1",'
                '"undo":{undo}}}\n')
    cordon = ('"fault":"cordon-zone","region":"us","summary":"cordon 1 node","objects":[],'
              '"data":{"nodes":["n1"]}')
    journals = {
        "a-bad-json": started + "{not json\n" + prepared.format(undo="{" + cordon + "}"),
        "b-unknown-key": started + prepared.format(undo="{" + cordon + ',"extra":1}'),
        "c-missing-field": started + prepared.format(undo="{" + cordon.replace('"region":"us",', "") + "}"),
    }
    for name, text in journals.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "events.jsonl").write_text(text)
    return {"a-bad-json": 2, "b-unknown-key": 2, "c-missing-field": 2}


@pytest.mark.lab
async def test_damaged_journals_are_reported_and_skipped_and_the_pending_run_is_recovered(
        lab: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    damaged = _damaged_runs(runs, lab.environment_file)
    env = load_environment(lab.environment_file)
    targets = Targets(env, ScenarioClock(env.time_scale))
    try:
        # A genuinely pending run, sorted after the damaged ones: its runner cordoned zone 1 and died.
        fault = CordonZone(CordonZone.Params(cluster="us", zone="zone-1"))
        run_dir = runs / "d-pending"
        with Journal(run_dir / "events.jsonl", ScenarioClock(env.time_scale)) as journal:
            journal.write("run_started", environment=str(lab.environment_file), time_scale=env.time_scale)
            undo = await fault.prepare(targets)
            journal.write("fault_prepared", step="s1", undo=undo, params=fault.params)
            await fault.inject(targets, undo)
        kube = targets.kube("us")
        assert any(n.spec.unschedulable for n in (await kube.call(kube.core.list_node)).items)

        code = await asyncio.to_thread(main, ["recover", "--runs-dir", str(runs)])
        captured = capsys.readouterr()
        out = captured.out
        assert code == 3, captured
        assert "reverted  cordon-zone in us" in out
        assert not any(n.spec.unschedulable for n in (await kube.call(kube.core.list_node)).items)
        assert not needs_recovery(run_dir)
        for name, line in damaged.items():
            assert f"run {name}: skipped, {runs / name / 'events.jsonl'}:{line}:1: damaged journal" in out
            assert f"fix or delete line {line} and run `drill recover {name}`" in out
        assert "not a JSON line" in out
        assert "has key 'extra' drill does not know" in out
        assert "lacks key 'region'" in out
        assert "recover it by hand" in out
    finally:
        await targets.aclose()


def test_a_damaged_journal_named_alone_exits_3_with_its_place(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    _damaged_runs(runs, tmp_path / "env.yaml")
    assert main(["recover", "--runs-dir", str(runs), "b-unknown-key"]) == 3
    out = capsys.readouterr().out
    assert f"{runs / 'b-unknown-key' / 'events.jsonl'}:2:1: damaged journal" in out
    assert "Traceback" not in out


def test_a_runs_dir_that_does_not_exist_is_an_error_not_all_clear(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover", "--runs-dir", str(tmp_path / "nonexistent")]) == 2
    err = capsys.readouterr().err
    assert f"no runs directory {tmp_path / 'nonexistent'} (from --runs-dir)" in err
    assert "nothing to recover" not in err
