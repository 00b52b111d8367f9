"""``drill export --to chaostoolkit`` against a lab: the exported us-outage run by Chaos Toolkit's own
CLI (``chaos run``, a subprocess) completes, its activities (drill's faults and probes) succeed, its
rollbacks put the lab back as it was; ``chaos discover`` lists drill's activities; the run's journal is
drill's, so that ``drill recover`` would find nothing left to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.cli import main
from drills.environment import Environment
from drills.journal import pending_undos, read_journal
from probes.resolver import parse_nameserver

pytestmark = pytest.mark.lab

CHAOS = Path(sys.executable).with_name("chaos")
REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "us-outage.yaml"


def _cluster_state(env: Environment) -> dict[str, Any]:
    """What a fault of the drill may change, per region, read through the Kubernetes client: every
    Deployment's replicas and annotations (drill's marks included), every node's schedulability and
    the network policies."""
    state: dict[str, Any] = {}
    for name, region in sorted(env.regions.items()):
        with k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context) as api:
            apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
            networking = k8s.NetworkingV1Api(api)
            state[name] = {
                "deployments": {f"{d.metadata.namespace}/{d.metadata.name}": (d.spec.replicas,
                                                                              d.metadata.annotations or {})
                                for d in apps.list_deployment_for_all_namespaces().items},
                "unschedulable": sorted(n.metadata.name for n in core.list_node().items
                                        if n.spec.unschedulable),
                "policies": sorted(f"{p.metadata.namespace}/{p.metadata.name}"
                                   for p in networking.list_network_policy_for_all_namespaces().items),
            }
    return state


def _dns_answer(env: Environment) -> list[str]:
    """The Traffic Manager name's answer from the lab's name server, as a resolver gets it."""
    server = parse_nameserver(env.traffic_manager.nameservers[0])
    query = dns.message.make_query(env.traffic_manager.fqdn, dns.rdatatype.A)
    reply = dns.query.udp(query, server.host, port=server.port, timeout=2.0)
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


def _chaos(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHAOS), "--no-version-check", "--log-file", str(cwd / "chaos.log"), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def chaos_run(lab_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """us-outage exported with the lab's environment file and run by ``chaos run``: its journal, the
    lab's state before and after, and the drill run directory it made."""
    folder = tmp_path_factory.mktemp("chaos-export")
    experiment, journal = folder / "experiment.json", folder / "journal.json"
    env = {**os.environ, "HOME": str(folder), "DRILL_ENVIRONMENT": str(lab_env.path)}
    assert main(["export", str(SCENARIO), "--to", "chaostoolkit", "--env", str(lab_env.path),
                 "-o", str(experiment)]) == 0
    before, answer = _cluster_state(lab_env), _dns_answer(lab_env)
    run = _chaos("run", "--journal-path", str(journal), str(experiment), cwd=folder, env=env)
    assert run.returncode == 0, run.stdout + run.stderr + (folder / "chaos.log").read_text()
    after = _cluster_state(lab_env)
    # Traffic Manager brings the US endpoint back once its health checks pass again (a few of its
    # probe intervals: well under a real second at the lab's time scale): the name's answer is awaited.
    deadline = time.monotonic() + 30
    while (back := _dns_answer(lab_env)) != answer and time.monotonic() < deadline:
        time.sleep(0.1)
    runs = Path(os.environ["DRILL_RUNS_DIR"])
    made = [p for p in runs.iterdir() if "chaos-us-outage" in p.name]
    return {"journal": json.loads(journal.read_text()), "before": before, "after": after,
            "answer": (answer, back), "runs": made, "exported": json.loads(experiment.read_text())}


def test_chaos_run_completes_with_steady_state_met_before_and_after(chaos_run: dict[str, Any]) -> None:
    journal = chaos_run["journal"]
    assert (journal["status"], journal["deviated"]) == ("completed", False)
    for moment in ("before", "after"):
        state = journal["steady_states"][moment]
        assert state["steady_state_met"] is True, state
        assert [p["activity"]["name"] for p in state["probes"]] == [
            "dns is steady", "users is steady", "web_eu is steady"]


def test_each_method_activity_and_rollback_succeeded(chaos_run: dict[str, Any]) -> None:
    journal = chaos_run["journal"]
    assert [(a["activity"]["name"], a["status"]) for a in journal["run"]] == [
        ("kill-us-ingress: kill-ingress in us", "succeeded"),
        ("step-2: wait until dns.answer == eu", "succeeded"),
        ("step-3: wait 2m00s", "succeeded")], journal["run"]
    assert journal["run"][1]["output"] == "eu"
    assert [(a["activity"]["name"], a["status"]) for a in journal["rollbacks"]] == [
        ("undo kill-us-ingress", "succeeded")]


def test_the_lab_is_back_to_its_initial_state(chaos_run: dict[str, Any]) -> None:
    assert chaos_run["after"] == chaos_run["before"]
    before, after = chaos_run["answer"]
    assert after == before


def test_the_run_is_journaled_as_drill_run_journals_it(chaos_run: dict[str, Any]) -> None:
    [run_dir] = chaos_run["runs"]
    entries = read_journal(run_dir / "events.jsonl")
    events = [e.event for e in entries]
    assert (events[0], events[-1]) == ("run_started", "run_ended")
    assert events.index("fault_prepared") < events.index("object_snapshot") < events.index("fault_applied")
    assert {"lock_held", "fault_reverted", "object_restored"} <= set(events)
    assert pending_undos(entries) == []


def test_chaos_discover_lists_drills_activities(tmp_path: Path) -> None:
    # Chaos Toolkit names an extension by its distribution (drill) and finds discover() in its package.
    discovery = tmp_path / "discovery.json"
    done = _chaos("discover", "--no-install", "--no-system-info", "--discovery-path", str(discovery),
                  "drill", cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(discovery.read_text())
    assert found["extension"]["name"] == "drill"
    assert sorted((a["type"], a["name"]) for a in found["activities"]) == [
        ("action", "apply_fault"), ("action", "revert_fault"), ("probe", "holds"), ("probe", "signal"),
        ("probe", "wait"), ("probe", "wait_until")]


_CRASH = """\
import os, sys
from drills.chaostoolkit.actions import apply_fault
print(apply_fault("kill-us-ingress", "kill-ingress", {"cluster": "us"}, {"drill_environment": sys.argv[1],
                                                                        "drill_scenario": "us-outage"}))
os._exit(9)  # the chaos process dies before its rollbacks run
"""


def _chaos_process(script: str, lab_env: Environment,
                   cwd: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``script`` (activities called as ``chaos run`` calls them) to its end; it and the run
    directory it made."""
    runs = Path(os.environ["DRILL_RUNS_DIR"])
    known = set(runs.iterdir())
    done = subprocess.run([sys.executable, "-c", script, str(lab_env.path)], capture_output=True, text=True,
                          timeout=60, cwd=cwd, check=False)
    [run_dir] = set(runs.iterdir()) - known
    return done, run_dir


def test_drill_recover_finishes_a_crashed_chaos_run(chaos_run: dict[str, Any], lab_env: Environment,
                                                    tmp_path: Path) -> None:
    before = _cluster_state(lab_env)
    crashed, run_dir = _chaos_process(_CRASH, lab_env, tmp_path)
    assert crashed.returncode == 9, crashed.stderr
    assert _cluster_state(lab_env)["us"]["deployments"]["ingress-nginx/ingress-nginx-controller"][0] == 0
    assert main(["recover", run_dir.name]) == 0
    assert _cluster_state(lab_env) == before


_EXIT = _CRASH.replace("os._exit(9)  # the chaos process dies before its rollbacks run",
                       "sys.exit(9)  # the process ends before its rollbacks run")


def test_a_process_ending_with_a_fault_in_place_says_what_and_how_to_finish(
        chaos_run: dict[str, Any], lab_env: Environment, tmp_path: Path) -> None:
    before = _cluster_state(lab_env)
    ended, run_dir = _chaos_process(_EXIT, lab_env, tmp_path)
    assert ended.returncode == 9, ended.stderr
    assert "1 fault(s) still in place" in ended.stderr
    assert "kill-us-ingress: " in ended.stderr
    assert "undo with: " in ended.stderr
    assert f"drill recover {run_dir.name}" in ended.stderr
    assert main(["recover", run_dir.name]) == 0
    assert _cluster_state(lab_env) == before


def test_drill_abort_interrupts_a_chaos_run_and_its_rollbacks_still_run(
        chaos_run: dict[str, Any], lab_env: Environment, tmp_path: Path) -> None:
    # A long last wait, so that the abort lands while the method runs.
    scenario = tmp_path / "us-outage.yaml"
    scenario.write_text(SCENARIO.read_text().replace("- wait: 2m ", "- wait: 1h "))
    experiment, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    assert main(["export", str(scenario), "--to", "chaostoolkit", "--env", str(lab_env.path),
                 "-o", str(experiment)]) == 0
    runs = Path(os.environ["DRILL_RUNS_DIR"])
    known = set(runs.iterdir())
    before = _cluster_state(lab_env)
    env = {**os.environ, "HOME": str(tmp_path), "DRILL_ENVIRONMENT": str(lab_env.path)}
    chaos = subprocess.Popen([str(CHAOS), "--no-version-check", "--log-file", str(tmp_path / "chaos.log"),
                              "run", "--journal-path", str(journal), str(experiment)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             cwd=tmp_path)
    try:
        run_dir = _applied(runs, known, chaos)
        assert main(["abort", run_dir.name]) == 0
        output, _ = chaos.communicate(timeout=120)
    finally:
        if chaos.poll() is None:
            chaos.send_signal(signal.SIGKILL)
            chaos.wait()
    done = json.loads(journal.read_text())
    # The abort fails the activity under way and every one after it (the hour-long wait included),
    # rather than that one alone; the rollbacks then undo the fault.
    names = [(a["activity"]["name"], a["status"]) for a in done["run"]]
    assert (names[0], names[-1]) == (("kill-us-ingress: kill-ingress in us", "succeeded"),
                                     ("step-3: wait 1h00m", "failed")), output
    assert "the drill must stop: SIGTERM (drill abort)" in done["run"][-1]["exception"][-1]
    assert [(a["activity"]["name"], a["status"]) for a in done["rollbacks"]] == [
        ("undo kill-us-ingress", "succeeded")], output
    assert pending_undos(read_journal(run_dir / "events.jsonl")) == []
    assert _cluster_state(lab_env) == before


def _applied(runs: Path, known: set[Path], chaos: subprocess.Popen[str]) -> Path:
    """The chaos run's drill run directory, once its journal says the fault is applied."""
    while chaos.poll() is None:
        for run_dir in set(runs.iterdir()) - known:
            events = run_dir / "events.jsonl"
            if events.is_file() and '"fault_applied"' in events.read_text():
                return run_dir
        time.sleep(0.02)
    raise AssertionError(f"chaos run ended before its fault was applied: {chaos.communicate()[0]}")
