"""The crash matrix again, with the runs directory lost: a real ``drill run`` killed with SIGKILL at each
point of :data:`test_crash_matrix.POINTS`, its runs directory deleted (the runner's machine is gone), then
``drill recover --env`` from the marks the run left on the objects it changed; each time both regions
of the lab are as they were before the drill. A module of its own so that it runs beside the journal's
matrix, on another worker.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from drillrun import settled_world, world_snapshot
from test_crash_matrix import POINTS, kill_drill

from drills.cli import main
from drills.environment import Environment
from drills.labprocess import LabProcess

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("point", POINTS)
def test_a_drill_killed_here_with_its_runs_lost_is_recovered_from_its_marks(
        point: str, lab: LabProcess, lab_env: Environment, tmp_path: Path, spawn: Callable[..., Spawned],
        capsys: pytest.CaptureFixture[str]) -> None:
    before = world_snapshot(lab_env)
    runs = kill_drill(POINTS[point], lab, lab_env, tmp_path, spawn)
    shutil.rmtree(runs)
    assert main(["recover", "--env", str(lab.environment_file), "--runs-dir", str(runs)]) == 0, \
        capsys.readouterr().out
    assert settled_world(lab_env, before) == before
