"""A fault whose inject failed half-way (one node cordoned, the other refused) is undone whole by its
revert: the undo record names every object the inject meant to change, not only those it did."""

from __future__ import annotations

from typing import Any

import pytest
from faultkube import (
    cordoned,
    lab_targets,  # noqa: F401 - the targets fixture
    nodes,
    zone_of,
)
from kubernetes.client import ApiException

from drills.errors import FaultError
from drills.faults.nodes import CordonZone
from drills.targets import Targets

pytestmark = pytest.mark.lab


async def test_a_cordon_that_failed_on_one_of_two_nodes_is_reverted_on_both(
        targets: Targets, monkeypatch: pytest.MonkeyPatch) -> None:
    fault = CordonZone(CordonZone.Params(cluster="us", zone="zone-1"))
    undo = await fault.prepare(targets)
    zone_1 = sorted(n for n, node in (await nodes(targets, "us")).items() if zone_of(node) == "zone-1")
    assert len(zone_1) == 2
    kube = targets.kube("us")
    patch_node = kube.core.patch_node

    def refuse_the_second(name: str, body: Any, **kwargs: Any) -> Any:
        if name == zone_1[1]:
            raise ApiException(status=422, reason="Unprocessable Entity")
        return patch_node(name, body, **kwargs)

    monkeypatch.setattr(kube.core, "patch_node", refuse_the_second)
    with pytest.raises(FaultError, match=f"cordon node us/{zone_1[1]}: 422"):
        await fault.inject(targets, undo)
    monkeypatch.undo()
    during = await nodes(targets, "us")
    assert [n for n in zone_1 if cordoned(during[n])] == [zone_1[0]]

    await fault.revert(targets, undo)
    assert not any(cordoned(n) for n in (await nodes(targets, "us")).values())
