"""Every example environment shipped in scenarios/environments/ loads and validates."""

from pathlib import Path

import pytest

from drills.environment import load_environment

EXAMPLES = sorted((Path(__file__).parents[2] / "scenarios" / "environments").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert EXAMPLES, "scenarios/environments/ ships at least one example"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    env = load_environment(path)
    assert env.time_scale == 1
    assert not env.is_lab
    for name, region in env.regions.items():
        assert env.region_of_target(region.target) == name
