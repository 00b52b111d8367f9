"""The Chaos Toolkit actions journal and revert a fault as ``drill run`` and ``drill recover`` do: the
fault to revert is found through the journaled plugin reference, not the undo record's own name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from drills import plugins
from drills.errors import FaultError
from drills.faults.base import Undo
from drills.journal import PendingUndo
from drills.recover import fault_to_revert

THIRDPARTY = Path(__file__).resolve().parents[2] / "plugins" / "thirdparty"

@pytest.fixture
def shop_chaos(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Any]]:
    """The third party's fault registered as ``scale-web-down``; its class is ``ShrinkDeployment`` and
    its undo records say ``shrink-deployment``."""
    monkeypatch.syspath_prepend(str(THIRDPARTY))
    entry = EntryPoint("scale-web-down", "shopchaos.faults:ShrinkDeployment", plugins.FAULTS)
    monkeypatch.setattr(plugins, "entry_points",
                        lambda group: [entry] if group == plugins.FAULTS else [])
    plugins._load.cache_clear()
    plugins._origins.cache_clear()
    yield entry.load()
    plugins._load.cache_clear()
    plugins._origins.cache_clear()
    sys.modules.pop("shopchaos.faults", None)
    sys.modules.pop("shopchaos", None)

def _pending(params: dict[str, Any], ref: plugins.PluginRef | None) -> PendingUndo:
    undo = Undo(fault="shrink-deployment", region="us", summary="scale shop/web in us from 3 to 0")
    return PendingUndo(step="shrink", undo=undo, params=params, plugin=ref)

def test_a_plugin_fault_is_reverted_through_its_entry_point_not_its_undo_records_name(
        shop_chaos: type[Any]) -> None:
    ref = plugins.reference(plugins.FAULTS, "scale-web-down", shop_chaos)
    fault = fault_to_revert(_pending({"cluster": "us", "namespace": "shop", "deployment": "web",
                                              "replicas": 0}, ref))
    assert isinstance(fault, shop_chaos)

def test_parameters_that_no_longer_validate_still_revert(shop_chaos: type[Any]) -> None:
    ref = plugins.reference(plugins.FAULTS, "scale-web-down", shop_chaos)
    # A newer version of the plugin forbids what the journal holds: the revert works from the undo record.
    fault = fault_to_revert(_pending({"cluster": "us", "replicas": -1, "gone": True}, ref))
    assert isinstance(fault, shop_chaos)

def test_a_fault_whose_plugin_is_gone_says_so(shop_chaos: type[Any]) -> None:
    gone = plugins.PluginRef(plugins.FAULTS, "scale-db-down", "shopchaos.db:ScaleDown", "shop-chaos", "1.2")
    with pytest.raises(FaultError, match=r"'scale-db-down'.*no longer installed"):
        fault_to_revert(_pending({}, gone))
