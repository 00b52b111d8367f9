"""The probes package's public names: sorted, present, and the entry points name real probe classes."""

from __future__ import annotations

from importlib.metadata import entry_points

import probes


def test_all_is_sorted_and_importable() -> None:
    assert probes.__all__ == sorted(probes.__all__)
    for name in probes.__all__:
        assert hasattr(probes, name), name


def test_each_registered_probe_declares_what_the_runner_needs() -> None:
    registered = {ep.name: ep.load() for ep in entry_points(group="drill.probes")}
    assert {"dns", "http", "replicas"} <= set(registered)
    for name, cls in registered.items():
        assert cls.Spec.model_config.get("extra") == "forbid", name
        assert "steady" in cls.SIGNALS, name
        assert cls.METRICS, name
        for attribute in ("sample", "signals", "metrics"):
            assert callable(getattr(cls, attribute, None)), (name, attribute)
