"""The shipped zone scenarios pass on labs of the sound design and leave them as they found them;
``drill plan`` shows what a run would do without doing it; ``drill report`` renders a run again.

The drills drive the module's lab through its environment file, exactly as ``drill lab up`` users
do. Each scenario gets a lab of its own (a module each): after zone-cordon, web's zone-1 replica
lives in another zone, so a drain of zone-1 would have no web pod left to evict.
"""

from __future__ import annotations

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
    """One zone-cordon drill on the module's lab, which must be as it was afterwards."""
    with unchanged(lab_env):
        yield drill_run(tmp_path_factory.mktemp("runs"), str(SCENARIOS / "zone-cordon.yaml"),
                        "--env", str(lab.environment_file), "--trials", "1")


def test_zone_cordon_passes_with_web_back_in_the_other_zones(zone_cordon: Finished) -> None:
    run = zone_cordon
    assert (run.code, run.record["verdict"]) == (0, "passed"), run.output
    # One of three replicas lived in zone-1: two kept serving, the third came back in another zone
    # after its 20 s start delay.
    assert run.metric("web_us.min_ready")["value"] == 2
    restore = run.metric("web_us.time_to_restore")
    assert restore["value"] + restore["error"] >= 20.0
    assert restore["value"] < 60.0
    assert run.metric("web_us.ready_by_zone.zone-1")["value"] == 0
    assert [r["outcome"] for r in run.record["rollback"]] == ["reverted", "reverted"]
    print(f"measured: zone-cordon min_ready 2, time_to_restore {restore['value']} ± {restore['error']} s")


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
