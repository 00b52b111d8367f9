"""``drill doctor``: with the read-only identity it names what a scenario's faults may not do and the
rules to add; with the operator identity it passes; a fault that declares nothing is "unknown"."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from drills.cli import main
from drills.doctor import diagnose
from drills.environment import load_environment
from drills.faults.base import FaultBase
from drills.labprocess import LabProcess
from drills.labproof import prove_lab
from drills.plugins import installed

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def _identity(lab: LabProcess, name: str) -> str:
    return str(lab.directory / "identities" / f"{name}.yaml")


def test_the_read_only_identity_is_told_what_the_faults_need(
        rbac_lab: LabProcess, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = str(ROOT / "scenarios/drain-nodes.yaml")
    code = main(["doctor", "--env", _identity(rbac_lab, "drill-readonly"), scenario])
    out = capsys.readouterr().out
    assert code == 2, out
    assert "ok          region us: Kubernetes API" in out
    assert "ok          drill (probes, plan)" in out
    assert "missing     drain-nodes: patch nodes in eu, us; create pods/eviction in eu, us" in out
    assert '  - apiGroups: [""]\n    resources: ["pods/eviction"]\n    verbs: [create]' in out
    assert "kill-ingress" not in out  # only the scenario's faults
    # A drill holds the environment's lock: the read-only identity may read the Lease, not take it.
    assert ("missing     drill run (identity, lock): create leases (coordination.k8s.io) in namespace drill "
            "in eu, us") in out
    assert "    # in a Role in namespace drill\n    resources: [\"leases\"]" in out


def test_the_operator_identity_passes(rbac_lab: LabProcess, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--env", _identity(rbac_lab, "drill-operator")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "missing" not in out
    assert "ok          drill run (identity, lock): get namespaces, get leases" in out
    for kind in ("cordon-zone", "drain-nodes", "kill-ingress", "delete-pods", "isolate"):
        assert f"ok          {kind}: " in out
    assert "not checked disable-endpoint: needs Azure role 'Traffic Manager Contributor'" in out
    assert out.rstrip().endswith("all fine")


class _Undeclared(FaultBase):
    """A plugin fault that declares no PERMISSIONS (FaultBase's default: None)."""

    Params: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self, params: Any) -> None:
        self.params = params


async def test_a_fault_that_declares_nothing_is_unknown(rbac_lab: LabProcess) -> None:
    env = await prove_lab(load_environment(_identity(rbac_lab, "drill-operator")))
    plugins = installed()
    plugins = type(plugins)(faults={"undeclared": _Undeclared}, probes=plugins.probes)
    diagnosis = await diagnose(env, plugins)
    assert [(f.outcome, f.subject) for f in diagnosis.allowed] == [
        ("ok", "drill (probes, plan)"), ("ok", "drill run (identity, lock)"), ("unknown", "undeclared")]
    assert diagnosis.healthy
