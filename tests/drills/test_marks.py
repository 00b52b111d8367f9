"""How a run's marks fit in Azure tags: every value within 256 characters, at most 50 tags, the
resource's own tags kept, and read back as written."""

from __future__ import annotations

import pytest

from drills.marks import MAX_TAG_VALUE, RUN_TAG, tag_entries, tags_with

AKS_TAGS = {"aks-managed-poolName": "nodepool1", "aks-managed-orchestrator": "Kubernetes:1.32.0"}


def instances(count: int) -> dict[str, list[dict[str, object]]]:
    """The marks of ``count`` powered-off scale-set instances, as zone-down leaves them."""
    return {str(i): [{"power": "running"}, {"power": ["stopped"]}] for i in range(count)}


def test_many_snapshots_are_cut_into_tags_within_azures_value_limit_and_read_back() -> None:
    entries = instances(40)
    tags = tags_with(AKS_TAGS, "20261201T060000Z-zone-down-ab12", entries)
    ours = {k: v for k, v in tags.items() if k not in AKS_TAGS}
    assert len(ours) > 2  # one run tag and several snapshot tags
    assert all(len(v) <= MAX_TAG_VALUE for v in tags.values())
    assert tags[RUN_TAG] == "20261201T060000Z-zone-down-ab12"
    assert tag_entries(tags) == entries
    assert {k: tags[k] for k in AKS_TAGS} == AKS_TAGS


def test_removing_the_last_snapshot_removes_every_drill_tag_and_keeps_the_resources_own() -> None:
    tags = tags_with(AKS_TAGS, "run", instances(3))
    assert tags_with(tags, "run", {}) == AKS_TAGS


def test_a_resource_that_would_carry_more_than_50_tags_is_refused() -> None:
    own = {f"team-{i}": "x" for i in range(48)}
    with pytest.raises(ValueError, match="more than Azure's 50"):
        tags_with(own, "run", instances(40))
