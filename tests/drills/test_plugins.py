"""The plugin registry: entry points by group, and a broken plugin named rather than fatal."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from drills import plugins
from drills.environment import load_environment
from drills.faults.base import FaultBase, Undo, undo_command


class GoodFault(FaultBase):
    """A fault with everything the Protocol declares (the optional members from FaultBase)."""

    name: ClassVar[str] = "good"

    class Params(BaseModel):
        cluster: str

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Any) -> Undo:
        return Undo(fault=self.name, region=self.params.cluster, summary="nothing")

    async def inject(self, targets: Any, undo: Undo) -> None:
        pass

    async def revert(self, targets: Any, undo: Undo) -> None:
        pass


class NoParams:
    """A fault class that forgot its Params, and more."""

    name: ClassVar[str] = "no-params"


class SyncRevert(GoodFault):
    """A fault whose revert is not a coroutine function: the runner would never await it."""

    def revert(self, targets: Any, undo: Undo) -> None:  # type: ignore[override]
        pass


class DictParams(GoodFault):
    """A fault whose Params is not a pydantic model."""

    Params = dict  # type: ignore[assignment]


class Renamed(GoodFault):
    """A fault that calls itself otherwise than its entry point."""

    name: ClassVar[str] = "renamed-fault"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fault group of one good, one unimportable and one incomplete plugin."""
    fake = {
        plugins.FAULTS: [
            EntryPoint("good", f"{__name__}:GoodFault", plugins.FAULTS),
            EntryPoint("gone", "drill_no_such_module:Fault", plugins.FAULTS),
            EntryPoint("incomplete", f"{__name__}:NoParams", plugins.FAULTS),
            EntryPoint("sync", f"{__name__}:SyncRevert", plugins.FAULTS),
            EntryPoint("dict", f"{__name__}:DictParams", plugins.FAULTS),
            EntryPoint("new-name", f"{__name__}:Renamed", plugins.FAULTS),
        ],
    }
    monkeypatch.setattr(plugins, "entry_points", lambda group: fake.get(group, []))
    plugins._load.cache_clear()
    plugins._origins.cache_clear()
    yield
    plugins._load.cache_clear()
    plugins._origins.cache_clear()


def test_a_broken_plugin_is_left_out_with_the_reason_and_the_others_stay(registered: None) -> None:
    found = plugins.installed()
    assert dict(found.faults) == {"good": GoodFault, "new-name": Renamed}
    assert found.why_unavailable(plugins.FAULTS, "gone") == (
        "cannot load drill_no_such_module:Fault: ModuleNotFoundError: No module named 'drill_no_such_module'")
    assert found.why_unavailable(plugins.FAULTS, "incomplete") == (
        f"{__name__}:NoParams lacks Params, PERMISSIONS, prepare, inject, revert, by_hand "
        "(inherit drills.faults.base.FaultBase for the optional ones)")
    assert found.why_unavailable(plugins.FAULTS, "sync") == (
        f"{__name__}:SyncRevert has revert not defined with `async def`")
    assert found.why_unavailable(plugins.FAULTS, "dict") == (
        f"{__name__}:DictParams has Params not a pydantic model")
    assert found.why_unavailable(plugins.FAULTS, "good") is None
    assert found.why_unavailable(plugins.PROBES, "dns") is None
    assert plugins.fault_types() == {"good": GoodFault, "new-name": Renamed}
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


def test_a_journaled_reference_finds_the_fault_again_by_class_when_its_entry_point_was_renamed() -> None:
    registry = plugins.Plugins(faults={"new-name": Renamed, "good": GoodFault})  # type: ignore[dict-item]
    ref = plugins.reference(plugins.FAULTS, "old-name", Renamed)
    assert ref.target == f"{__name__}:Renamed"
    assert registry.fault_for(ref, "renamed-fault") is Renamed
    # The same name, another class (it moved): the name still finds it.
    moved = plugins.PluginRef(plugins.FAULTS, "good", "gone.module:GoodFault")
    assert registry.fault_for(moved, "good") is GoodFault
    assert registry.fault_for(plugins.PluginRef(plugins.FAULTS, "x", "gone.module:X"), "x") is None


def test_a_journal_without_references_finds_the_fault_by_the_name_it_calls_itself() -> None:
    registry = plugins.Plugins(faults={"new-name": Renamed})  # type: ignore[dict-item]
    assert registry.fault_for(None, "renamed-fault") is Renamed
    assert registry.fault_for(None, "new-name") is Renamed
    assert registry.fault_for(None, "unknown") is None


def test_drills_own_plugins_pass_their_protocols() -> None:
    assert not any(plugins.installed().broken.values())


DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
PROTOCOLS = {"drills/faults/base.py": ("Undo", "Fault", "FaultBase", "FaultFactory"),
             "probes/base.py": ("Sample", "Metric", "Marks", "Probe", "ProbeBase", "ProbeFactory"),
             "reports/base.py": ("Reporter", "ReporterFactory")}
"""The Protocols of each extension point, their defaults and the data they exchange."""


def test_the_plugin_guide_gives_every_protocol_member_as_the_code_declares_it() -> None:
    documented = _classes("\n".join(re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)))
    root = DOCS.parents[1]
    for module, names in PROTOCOLS.items():
        code = _classes((root / module).read_text())
        for name in names:
            assert name in documented, f"docs/plugins.md lacks {name} ({module})"
            assert documented[name] == code[name], f"docs/plugins.md's {name} differs from {module}'s"
    assert set(documented) == {n for names in PROTOCOLS.values() for n in names}


def _classes(source: str) -> dict[str, dict[str, str]]:
    """Each class of ``source``: its members (annotated attributes with the docstring after them, and
    methods) as source text, normalised by the parser."""
    found: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        members: dict[str, str] = {"": ast.get_docstring(node) or ""}
        for i, item in enumerate(node.body):
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                after = node.body[i + 1] if i + 1 < len(node.body) else None
                doc = ast.unparse(after) if isinstance(after, ast.Expr) else ""
                members[item.target.id] = f"{ast.unparse(item)}\n{doc}"
            elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                members[item.name] = ast.unparse(item)
        found[node.name] = members
    return found


class _BrokenByHand(GoodFault):
    """A fault whose by_hand has a bug."""

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        return f"-n shop scale deployment/web --replicas={undo.data['replicas']}"


def test_a_by_hand_that_raises_gives_no_command_rather_than_an_error() -> None:
    env = load_environment(Path(__file__).parents[2] / "scenarios" / "environments" / "prod.example.yaml")
    assert undo_command(_BrokenByHand, Undo(fault="good", region="us", summary="s"), env) is None
    assert undo_command(FaultBase, Undo(fault="good", region="us", summary="s"), env) is None


def test_a_reference_whose_name_now_holds_another_fault_finds_nothing() -> None:
    registry = plugins.Plugins(faults={"good": GoodFault})  # type: ignore[dict-item]
    # Another class, calling itself otherwise, now holds the name: its revert is not the one to run.
    foreign = plugins.PluginRef(plugins.FAULTS, "good", "shopchaos.faults:Shrink", "shop-chaos", "1.2")
    assert registry.fault_for(foreign, "shrink-deployment") is None
    # The same name, but another distribution registered it then than now.
    other = plugins.PluginRef(plugins.FAULTS, "good", "gone.module:GoodFault", "shop-chaos", "1.2")
    assert registry.fault_for(other, "good") is None


def test_a_reference_finds_its_moved_class_when_its_distribution_still_registers_the_name() -> None:
    registry = plugins.installed()
    moved = plugins.PluginRef(plugins.FAULTS, "kill-ingress", "drills.faults.old:KillIngress", "drill", "0.1")
    assert registry.fault_for(moved, "kill-ingress") is registry.faults["kill-ingress"]
