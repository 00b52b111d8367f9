"""A user's mistakes at the ``drill`` command line: one clear line (``file:line:col: message`` when a file
is at fault) and exit 2, never a traceback, and nothing started. Run as a user runs it, in a process
from a scratch directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drills.cli import main

DRILL = str(Path(sys.executable).parent / "drill")
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "us-outage.yaml"

BAD_ENVIRONMENT = """apiVersion: drill/v1
kind: Environment
name: prod
timeScale: 0
regions:
  us:
    context: aks
    ingress: {namespace: ingress-nginx}
    endpoint: shop-eastus
    target: shop.example
trafficManager: {fqdn: shop.example, nameservers: ["127.0.0.1:53"]}
"""


def _drill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRILL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    (tmp_path / "binary.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    (tmp_path / "env-bad.yaml").write_text(BAD_ENVIRONMENT)
    (tmp_path / "env-binary.yaml").write_bytes(b"name: \xff\xfe\n")
    (tmp_path / "env-service.yaml").write_text(
        BAD_ENVIRONMENT.replace("timeScale: 0", "timeScale: 1")
        .replace("{namespace: ingress-nginx}", "{namespace: i, deployment: i}")
        + "service:\n  scheme: gopher\n  port: 99999\n")
    (tmp_path / "topology-bad.yaml").write_text("trafficManager:\n  ttl: 500ms\n")
    (tmp_path / "topology-nan.yaml").write_text("timeScale: .nan\n")
    (tmp_path / "topology-timer.yaml").write_text("terminationTime: 1" + "0" * 400 + "s\n")
    (tmp_path / "env-nan.yaml").write_text(BAD_ENVIRONMENT.replace("timeScale: 0", "timeScale: .nan"))
    (tmp_path / "good.yaml").write_text(SCENARIO.read_text())
    (tmp_path / "runs").mkdir()
    return tmp_path


@pytest.mark.parametrize(("args", "expected"), [
    ((), "the following arguments are required: COMMAND"),
    (("run", "missing.yaml"), "drill: missing.yaml:1:1: cannot read the file: No such file or directory"),
    (("run", "folder"), "drill: folder:1:1: cannot read the file: it is a directory, not a regular file"),
    (("run", "binary.yaml"), "drill: binary.yaml:2:118: not a UTF-8 text file (byte 0x80 at offset 136)"),
    (("validate", "binary.yaml"), "binary.yaml:2:118: not a UTF-8 text file"),
    (("plan", "binary.yaml"), "drill: binary.yaml:2:118: not a UTF-8 text file"),
    (("run", "good.yaml", "--env", "prod"), "drill: no environment named 'prod' (looked for "
                                            "environments/prod.yaml, scenarios/environments/prod.yaml"),
    (("run", "good.yaml", "--env", "nowhere.yaml"), "drill: no environment file nowhere.yaml"),
    (("run", "good.yaml", "--env", "env-bad.yaml"), "env-bad.yaml:4:12: Input should be greater than 0"),
    (("validate", "good.yaml", "--env", "env-service.yaml"),
     "env-service.yaml:13:11: Input should be 'http' or 'https'\n"
     "env-service.yaml:14:9: Input should be less than or equal to 65535"),
    (("run", "good.yaml", "--env", "env-binary.yaml"), "drill: env-binary.yaml:1:7: not a UTF-8 text file"),
    (("run", "good.yaml", "--topology", "topology-bad.yaml"),
     "drill: topology-bad.yaml:2:8: the TTL is a whole number of seconds, not 0.5s"),
    (("plan", "good.yaml", "--topology", "missing.yaml"),
     "drill: missing.yaml:1:1: cannot read the file: No such file or directory"),
    (("run", "good.yaml", "--time-scale", "0"), "the time scale must be more than 0 and at most 1000"),

    (("run", "good.yaml", "--trials", "0"), "argument --trials: at least 1 trial, not 0"),
    (("run", "good.yaml", "--trials", "four"), "argument --trials: not a whole number: 'four'"),
    (("report", "nope", "--runs-dir", "runs"), "drill: no run 'nope': it is neither a run directory nor "
                                               "a run id in /"),  # the runs dir, made absolute
    (("recover", "nope", "--runs-dir", "runs"), "drill: no run 'nope' in /"),
])
def test_a_mistake_is_one_clear_message_and_exit_2(scratch: Path, args: tuple[str, ...],
                                                   expected: str) -> None:
    result = _drill(*args, cwd=scratch)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr
    assert result.stdout == ""
    assert list((scratch / "runs").iterdir()) == []  # no run was started


@pytest.mark.parametrize(("args", "expected"), [
    (("run", "good.yaml", "--time-scale", "nan"), "the time scale must be a finite number, not 'nan'"),
    (("plan", "good.yaml", "--time-scale", "inf"), "the time scale must be a finite number, not 'inf'"),
    (("run", "good.yaml", "--topology", "topology-nan.yaml"),
     "drill: topology-nan.yaml:1:12: Input should be a finite number"),
    (("run", "good.yaml", "--topology", "topology-timer.yaml"),
     "drill: topology-timer.yaml:1:18: a duration is at most 100 years, not '1000"),
    (("run", "good.yaml", "--env", "env-nan.yaml"), "env-nan.yaml:4:12: Input should be a finite number"),
])
def test_a_number_that_is_not_finite_is_refused_as_such(
        scratch: Path, args: tuple[str, ...], expected: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # In-process (cheaper than a process each); the messages are those a user sees.
    monkeypatch.chdir(scratch)
    try:
        code = main([*args, "--runs-dir", "runs"])
    except SystemExit as exc:  # argparse refuses its own arguments
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert list((scratch / "runs").iterdir()) == []


def test_recover_with_nothing_to_recover_says_so_and_exits_0(scratch: Path) -> None:
    result = _drill("recover", "--runs-dir", "runs", cwd=scratch)
    said = f"nothing to recover in {scratch / 'runs'}\n"
    assert (result.returncode, result.stdout, result.stderr) == (0, said, "")
