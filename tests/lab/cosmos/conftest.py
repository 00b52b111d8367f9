"""Fixtures of the Cosmos DB tests: a background loop per module, an account per test (:mod:`cosmoslab`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cosmoslab import CosmosLab, Loop, start, stop


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    background = Loop()
    yield background
    background.close()


@pytest.fixture
def cosmos_settings() -> dict[str, Any]:
    """The topology's ``cosmos`` section for the test's account (a test overrides it by parametrising)."""
    return {"lag": {"p50": "60s", "p99": "60s"}}


@pytest.fixture
def cosmos(tmp_path: Path, loop: Loop, cosmos_settings: dict[str, Any]) -> Iterator[CosmosLab]:
    lab = start(tmp_path, loop, cosmos_settings)
    yield lab
    stop(lab)
