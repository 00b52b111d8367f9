"""An environment is a lab only when the lab proves it (observation 8 of issue 8): a ``lab:`` section
that points at a lab's API servers without the lab's proof key is a real environment, so drill asks
before touching it, and with no terminal to ask on (and no ``--yes``) refuses.
"""

from __future__ import annotations

import io
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from drills.cli import main
from drills.environment import Environment, load_environment
from drills.labprocess import LabProcess
from drills.labproof import prove_lab

pytestmark = pytest.mark.lab

SCENARIO = """\
apiVersion: drill/v1
name: forged-lab
probes:
  users: {kind: http, every: 1s}
steps:
  - fault: kill-ingress
    cluster: us
  - wait: 5s
expect:
  - users.downtime < 1h
"""


def _forged(lab_env: Environment, folder: Path, lab: dict[str, Any] | None = None,
            arm_endpoint: str | None = None) -> Path:
    """The lab's environment file with ``lab`` as its lab section, or ``arm_endpoint`` as its ARM's."""
    yaml = YAML(typ="safe")
    data = yaml.load(Path(lab_env.path).read_text())
    if lab is not None:
        data["lab"] = lab
    if arm_endpoint is not None:
        data["azure"]["armEndpoint"] = arm_endpoint
    path = folder / "forged.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


async def test_a_lab_proves_that_it_is_one(lab: LabProcess) -> None:
    env = load_environment(lab.environment_file)
    assert not env.is_lab  # the file alone says nothing
    proven = await prove_lab(env)
    assert proven.is_lab, proven.lab_doubt
    assert proven.lab_doubt is None


async def test_a_wrong_proof_key_proves_nothing(lab_env: Environment, tmp_path: Path) -> None:
    forger_key = tmp_path / "lab.proof"
    forger_key.write_text(secrets.token_hex(32))
    env = load_environment(_forged(lab_env, tmp_path, {"groundTruth": "truth.jsonl",
                                                       "proofFile": str(forger_key)}))
    proven = await prove_lab(env)
    assert not proven.is_lab
    assert proven.lab_doubt is not None
    assert "does not hold the lab's proof key" in proven.lab_doubt


@pytest.mark.parametrize("section", ["no proof file", "the forger's own key"])
def test_a_forged_lab_section_is_refused_without_a_terminal(
        lab_env: Environment, tmp_path: Path, section: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lab: dict[str, Any] = {"groundTruth": str(tmp_path / "truth.jsonl")}
    if section == "the forger's own key":
        (tmp_path / "lab.proof").write_text(secrets.token_hex(32))
        lab["proofFile"] = str(tmp_path / "lab.proof")
    forged = _forged(lab_env, tmp_path, lab)
    scenario = tmp_path / "forged-lab.yaml"
    scenario.write_text(SCENARIO)
    runs = tmp_path / "runs"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal to ask on
    code = main(["run", str(scenario), "--env", str(forged), "--runs-dir", str(runs), "--trials", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "refusing to inject faults into environment 'lab'" in err
    assert "says it is a lab, but it is treated as a real one" in err
    assert not runs.exists()


async def test_a_lab_s_clusters_with_a_real_arm_are_no_lab(lab_env: Environment, tmp_path: Path) -> None:
    # The lab's own section and key, but Azure faults would go to the real Azure Resource Manager.
    forged = _forged(lab_env, tmp_path, arm_endpoint="https://management.azure.com")
    proven = await prove_lab(load_environment(forged))
    assert not proven.is_lab
    assert proven.lab_doubt is not None
    assert "its azure.armEndpoint https://management.azure.com is not the lab's" in proven.lab_doubt
