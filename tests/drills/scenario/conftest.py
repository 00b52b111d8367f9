"""Fake faults and probes with the shape of drill's own, so that the scenario format is tested on its
own terms, whatever the real plugins' parameters become."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from drills import cli, plugins
from drills.units import parse_duration, parse_percent
from probes.base import ProbeBase

Seconds = Annotated[float, BeforeValidator(parse_duration),
                    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)$"})]
Share = Annotated[float, BeforeValidator(parse_percent),
                  WithJsonSchema({"type": "string", "pattern": r"^\d+%$"})]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KillIngress:
    """Scale the region's ingress controller to zero."""

    class Params(_Params):
        cluster: str


class CordonZone:
    """Cordon every node of a zone."""

    class Params(_Params):
        cluster: str
        zone: str


class DeletePods:
    """Delete the pods a selector picks."""

    class Params(_Params):
        cluster: str
        namespace: str
        selector: str
        share: Share = 100.0
        timeout: Seconds = 300.0


class DnsProbe(ProbeBase):
    """Ask the Traffic Manager name servers."""

    class Spec(_Params):
        vantage: list[str] = []

    SIGNALS: ClassVar[tuple[str, ...]] = ("answer", "steady")
    METRICS: ClassVar[tuple[str, ...]] = ("failover_time", "failover_time.*", "client_failover_time",
                                          "failback_time", "flaps")


class HttpProbe(ProbeBase):
    """Request the service as a user would."""

    class Spec(_Params):
        path: str = "/"
        connection: Literal["new", "reuse"] = "new"

    SIGNALS: ClassVar[tuple[str, ...]] = ("ok", "error_rate", "region", "steady")
    METRICS: ClassVar[tuple[str, ...]] = ("availability", "error_rate", "latency_p50", "latency_p99",
                                          "downtime")


class ReplicasProbe(ProbeBase):
    """Watch a deployment's ready replicas."""

    class Spec(_Params):
        cluster: str
        namespace: str
        deployment: str

    SIGNALS: ClassVar[tuple[str, ...]] = ("ready", "ready.*", "steady")
    METRICS: ClassVar[tuple[str, ...]] = ("min_ready", "time_to_restore", "ready_by_zone")


FAKES = plugins.Plugins(
    faults={"kill-ingress": KillIngress, "cordon-zone": CordonZone, "delete-pods": DeletePods},
    probes={"dns": DnsProbe, "http": HttpProbe, "replicas": ReplicasProbe},
    broken={plugins.PROBES: {"traffic-manager": "cannot load probes.tm:TrafficManagerProbe: "
                                                "ModuleNotFoundError: No module named 'probes.tm'"}},
)


@pytest.fixture
def fake_plugins() -> plugins.Plugins:
    return FAKES


@pytest.fixture
def installed_fakes(monkeypatch: pytest.MonkeyPatch) -> plugins.Plugins:
    """Make the fakes what the command line sees as installed, and ``validate`` its only command (so
    that these tests import nothing of the other commands); the real command line is run once in a
    process by test_scenario_bad_files.py."""
    monkeypatch.setattr(plugins, "installed", lambda: FAKES)
    monkeypatch.setattr(cli, "_COMMANDS", ("drills.cli.validate",))
    return FAKES


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """Write a scenario file (dedented text) and return its path."""
    counter = iter(range(1_000))

    def _write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"scenario-{next(counter)}.yaml")
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
