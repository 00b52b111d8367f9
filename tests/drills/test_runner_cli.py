"""``drill run`` and ``drill plan`` refuse what cannot work before anything starts (exit 2, no lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.cli import main
from drills.runner.session import Where, environment_file

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "us-outage.yaml"


@pytest.mark.parametrize("command", ["run", "plan"])
def test_lab_options_with_an_environment_file_are_refused(command: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    env = tmp_path / "staging.yaml"
    env.write_text("apiVersion: drill/v1\n")
    assert main([command, str(SCENARIO), "--env", str(env), "--time-scale", "60"]) == 2
    assert "--topology, --time-scale and --manifests shape a private lab" in capsys.readouterr().err


def test_an_environment_name_is_looked_up_where_design_md_says(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios" / "environments").mkdir(parents=True)
    (tmp_path / "scenarios" / "environments" / "staging.yaml").write_text("")
    assert environment_file("staging") == Path("scenarios/environments/staging.yaml")
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "staging.yaml").write_text("")
    assert environment_file("staging") == Path("environments/staging.yaml")
    assert Where.parse("lab") == Where()
    assert Where.parse("staging").env == Path("environments/staging.yaml")


def test_an_unknown_environment_says_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(SCENARIO), "--env", "prod"]) == 2
    err = capsys.readouterr().err
    assert "no environment named 'prod'" in err
    assert "environments/prod.yaml" in err
