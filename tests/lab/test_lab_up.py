"""``drill lab up`` as people and runners use it: the printed commands work, signals stop it cleanly,
bad topology files are reported at their place, and :mod:`drills.labprocess` starts and stops labs."""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from drills.environment import load_environment
from drills.errors import LabError
from drills.lab.groundtruth import read
from drills.labprocess import LabProcess, start_lab
from drills.labproof import prove_lab

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab

DRILL = str(Path(sys.executable).parent / "drill")
SCALE = "60"


def test_a_newcomer_can_run_the_printed_kubectl_dig_and_curl_commands(tmp_path: Path,
                                                                     spawn: Callable[..., Spawned]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}  # kubectl caches discovery under ~/.kube: a fresh one
    lab = spawn([DRILL, "lab", "up", "--time-scale", SCALE, "--dir", str(tmp_path / "lab")], env=env)
    environment = lab.wait_for(r"^environment: (/.+)$").group(1)
    assert Path(environment) == tmp_path / "lab" / "environment.yaml"
    assert load_environment(environment).time_scale == float(SCALE)
    lab.wait_for(r"^stop: Ctrl-C")
    suggested = lab.lines[lab.lines.index("try:") + 1:]
    commands = {Path(argv[0]).name: argv for argv in map(shlex.split, suggested[:suggested.index("")])}
    assert set(commands) == {"kubectl", "dig", "curl"}

    nodes = subprocess.run(commands["kubectl"], capture_output=True, text=True, env=env, timeout=60,
                           check=True)
    rows = [line.split() for line in nodes.stdout.splitlines()]
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [row[1] for row in rows[1:]] == ["Ready"] * 6

    answer = subprocess.run(commands["dig"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "status: NOERROR" in answer
    section = answer.split("ANSWER SECTION:")[1].strip().split("\n\n")[0]
    records = [line.split() for line in section.splitlines()]
    assert [(r[0], r[3], r[4]) for r in records] == [
        ("shop.trafficmanager.net.", "CNAME", "us.endpoints.drill.test.")]
    # Traffic Manager answers the CNAME alone; its target is asked for next, as a resolver does
    target = subprocess.run([*commands["dig"][:-1], "us.endpoints.drill.test"], capture_output=True,
                            text=True, timeout=30, check=True).stdout
    section = target.split("ANSWER SECTION:")[1].strip().split("\n\n")[0]
    assert [line.split()[3:] for line in section.splitlines()] == [
        ["A", commands["dig"][1].removeprefix("@").rsplit(".", 1)[0] + ".11"]]

    served = subprocess.run(commands["curl"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert served.startswith("HTTP/1.1 200")
    assert "X-Drill-Region: us" in served

    lab.signal(signal.SIGINT)  # Ctrl-C
    assert lab.finish() == 0
    assert not any("Traceback" in line for line in lab.lines)
    assert read(tmp_path / "lab" / "ground-truth.jsonl")[-1]["event"] == "lab_stopped"


@pytest.mark.parametrize(("text", "expected"), [
    ("trafficManager:\n  ttl: 30s\n  monitr: {interval: 10s}\n",
     "bad.yaml:3:3: unknown key 'monitr' (did you mean 'monitor'?)"),
    ("trafficManager:\n  monitor:\n    interval: 20s\n",
     "bad.yaml:3:15: Traffic Manager probes every 10s or 30s, not every 20s"),
    ("regions: [us, eu\n", "bad.yaml:2:1: YAML syntax error"),
])
def test_a_bad_topology_file_is_reported_at_its_place_and_nothing_starts(tmp_path: Path, text: str,
                                                                         expected: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = subprocess.run([DRILL, "lab", "up", "--topology", "bad.yaml", "--dir", "lab"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "lab").exists()


def test_a_lab_process_starts_stops_on_sigterm_and_says_where_its_environment_is(tmp_path: Path) -> None:
    began = time.monotonic()
    with start_lab(time_scale=float(SCALE), directory=tmp_path) as lab:
        started_s = time.monotonic() - began
        assert lab.environment_file == tmp_path / "environment.yaml"
        env = load_environment(lab.environment_file)
        assert env.lab is not None
        assert env.lab.pid == lab.pid
        assert any(line.startswith("lab up in ") for line in lab.output)
        code = lab.stop()
    assert code == 0
    assert lab.stderr().splitlines()[-1] == "lab stopped"
    assert "Traceback" not in lab.stderr()
    assert read(tmp_path / "ground-truth.jsonl")[-1]["event"] == "lab_stopped"
    # The whole lab, from spawning the process to its environment file, within a few seconds.
    assert started_s < 15


def test_a_lab_process_that_cannot_start_raises_with_what_the_lab_said(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("timeScale: -1\n")
    with pytest.raises(LabError, match=r"(?s)exited with status 2.*bad\.yaml:1:12: "):
        start_lab(topology=bad, directory=tmp_path / "lab")


def test_a_lab_process_not_ready_in_time_is_stopped_and_reported(tmp_path: Path) -> None:
    lab = LabProcess(time_scale=float(SCALE), directory=tmp_path, ready_timeout=0.01)
    with pytest.raises(LabError, match=r"was not ready within 0\.01 s"):
        lab.start()
    assert lab.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(lab.pid, 0)


async def test_a_lab_process_works_as_an_async_context_manager(tmp_path: Path) -> None:
    async with LabProcess(time_scale=float(SCALE), directory=tmp_path) as lab:
        assert (await prove_lab(load_environment(lab.environment_file))).is_lab
        pid = lab.pid
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_lab_whose_runner_died_stops_by_itself(tmp_path: Path) -> None:
    runner = ("import os, sys; from pathlib import Path; from drills.labprocess import start_lab; "
              f"lab = start_lab(time_scale={SCALE}, directory=Path(sys.argv[1])); "
              "print(lab.pid, flush=True); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", runner, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, check=True)
    pid = int(done.stdout)
    try:
        exited = os.pidfd_open(pid)
    except ProcessLookupError:
        exited = None  # already gone
    if exited is not None:
        # A pidfd becomes readable when the process exits: wait for that, not for a guess.
        readable, _, _ = select.select([exited], [], [], 15)
        os.close(exited)
        assert readable, f"the orphaned lab {pid} kept running"
    assert read(tmp_path / "ground-truth.jsonl")[-1]["event"] == "lab_stopped"
