"""The plugin registry: entry points by group, and a broken plugin named rather than fatal."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import ClassVar

import pytest
from pydantic import BaseModel

from drills import plugins


class GoodFault:
    """A fault with what the group requires."""

    class Params(BaseModel):
        cluster: str


class NoParams:
    """A fault class that forgot its Params."""

    name: ClassVar[str] = "no-params"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fault group of one good, one unimportable and one incomplete plugin."""
    fake = {
        plugins.FAULTS: [
            EntryPoint("good", f"{__name__}:GoodFault", plugins.FAULTS),
            EntryPoint("gone", "drill_no_such_module:Fault", plugins.FAULTS),
            EntryPoint("incomplete", f"{__name__}:NoParams", plugins.FAULTS),
        ],
    }
    monkeypatch.setattr(plugins, "entry_points", lambda group: fake.get(group, []))
    plugins._load.cache_clear()
    yield
    plugins._load.cache_clear()


def test_a_broken_plugin_is_left_out_with_the_reason_and_the_others_stay(registered: None) -> None:
    found = plugins.installed()
    assert dict(found.faults) == {"good": GoodFault}
    assert found.why_unavailable(plugins.FAULTS, "gone") == (
        "cannot load drill_no_such_module:Fault: ModuleNotFoundError: No module named 'drill_no_such_module'")
    assert found.why_unavailable(plugins.FAULTS, "incomplete") == f"{__name__}:NoParams lacks Params"
    assert found.why_unavailable(plugins.FAULTS, "good") is None
    assert found.why_unavailable(plugins.PROBES, "dns") is None
    assert plugins.fault_types() == {"good": GoodFault}
    assert plugins.probe_types() == {}


def test_drills_own_plugins_are_registered_by_name() -> None:
    found = plugins.installed()
    for group, names in ((plugins.FAULTS, {"cordon-zone", "drain-nodes", "kill-ingress", "delete-pods",
                                           "isolate"}),
                         (plugins.PROBES, {"dns", "http", "replicas"}),
                         (plugins.REPORTERS, {"markdown", "junit"})):
        usable = {plugins.FAULTS: found.faults, plugins.PROBES: found.probes,
                  plugins.REPORTERS: found.reporters}[group]
        assert names <= set(usable) | set(found.broken.get(group, {})), group


def test_the_reporters_are_usable_and_name_their_files() -> None:
    reporters = plugins.reporter_types()
    assert {name: cls.filename for name, cls in reporters.items() if name in ("markdown", "junit")} == {
        "markdown": "report.md", "junit": "junit.xml"}


def test_drills_own_faults_load_with_their_parameters() -> None:
    faults = plugins.fault_types()
    kubernetes = {"cordon-zone", "drain-nodes", "kill-ingress", "delete-pods", "isolate"}
    assert {*kubernetes, "region-failover", "region-outage", "disable-endpoint", "zone-down"} <= set(faults)
    assert all("cluster" in faults[name].Params.model_fields for name in kubernetes)
    # Every fault but a planned Cosmos DB failover (which moves the whole account) strikes one region.
    assert all({"cluster", "region"} & set(cls.Params.model_fields) for name, cls in faults.items()
               if name != "region-failover")
