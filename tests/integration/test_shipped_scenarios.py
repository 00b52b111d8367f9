"""``drill plan`` shows what a run of a shipped scenario would do without doing it; ``drill report``
renders a run again; a drill leaves its lab as it found it.

Each shipped scenario's verdict on the sound design (and on flawed ones) is in the corpus
(test_corpus.py), each at the time scale its bounds allow; this module's lab runs faster, so the
run here is only a run to render, whatever its verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from drillrun import SCENARIOS, Finished, drill_run, unchanged

from drills.cli import main
from drills.environment import Environment
from drills.labprocess import LabProcess

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def zone_cordon(lab: LabProcess, lab_env: Environment,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    """One zone-cordon drill on the module's lab, which must be as it was afterwards (its verdict is
    the corpus's business)."""
    with unchanged(lab_env):
        yield drill_run(tmp_path_factory.mktemp("runs"), str(SCENARIOS / "zone-cordon.yaml"),
                        "--env", str(lab.environment_file), "--trials", "1")


def test_report_renders_a_finished_run_again(zone_cordon: Finished,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    report = zone_cordon.run_dir / "report.md"
    first = report.read_text()
    report.unlink()
    runs = zone_cordon.run_dir.parent
    assert main(["report", zone_cordon.run_dir.name[:24], "--runs-dir", str(runs)]) == 0
    assert str(report) in capsys.readouterr().out
    assert report.read_text() == first


def test_plan_names_the_objects_and_the_undo_and_touches_nothing(
        lab: LabProcess, lab_env: Environment, capsys: pytest.CaptureFixture[str]) -> None:
    with unchanged(lab_env):
        code = main(["plan", str(SCENARIOS / "us-outage.yaml"), "--env", str(lab.environment_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "kill-us-ingress: fault kill-ingress in us: scale the ingress controller" in out
    assert "us/Deployment/ingress-nginx/ingress-nginx-controller" in out
    assert "--context lab-us -n ingress-nginx scale deployment/ingress-nginx-controller --replicas=2" in out
    assert "wait until dns.answer == eu" in out
    assert out.rstrip().endswith("nothing was changed.")


def test_plan_of_a_zone_loss_names_every_pod_of_the_zone(
        lab: LabProcess, lab_env: Environment, capsys: pytest.CaptureFixture[str]) -> None:
    with unchanged(lab_env):
        code = main(["plan", str(SCENARIOS / "zone-loss.yaml"), "--env", str(lab.environment_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    # Every namespace: the DaemonSet's agents of both nodes at least (web and the ingress controller
    # too, unless the zone-cordon drill of this module moved them out of zone-1).
    assert re.search(r"delete-every-pod-of-zone-1: fault delete-pods in us: delete (\d+) of the \1 pods in "
                     r"us \(every namespace\) in zone zone-1 \(their controller recreates them\)", out), out
    assert out.count("us/Pod/kube-system/node-agent-") == 2
    assert "uncordon aks-us-zone-1-0 aks-us-zone-1-1" in out
