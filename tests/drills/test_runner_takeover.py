"""Which regions a scenario expects to take over, which the pre-flight then checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from drills.environment import Environment, Monitor
from drills.runner.takeover import ask_as_the_monitor, takeover_regions
from drills.scenario import load_scenario

ENV = Environment.model_validate({
    "apiVersion": "drill/v1", "kind": "Environment", "name": "test",
    "regions": {name: {"context": name, "ingress": {"namespace": "i", "deployment": "i"}, "endpoint": name,
                       "target": f"{name}.t"} for name in ("us", "eu", "asia")},
    "trafficManager": {"fqdn": "shop.trafficmanager.net", "nameservers": ["127.0.0.1:53"]}})


def _regions(tmp_path: Path, steps: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(f"apiVersion: drill/v1\nname: s\nprobes:\n  dns: {{kind: dns}}\nsteps:\n{steps}")
    return takeover_regions(load_scenario(path, regions=set(ENV.regions), variables={}), ENV)


def test_every_region_but_the_one_whose_front_door_goes_takes_over(tmp_path: Path) -> None:
    assert _regions(tmp_path, "  - {fault: kill-ingress, cluster: us}\n") == ["eu", "asia"]


def test_a_wait_naming_a_region_expects_it_to_take_over(tmp_path: Path) -> None:
    steps = ("  - {fault: cordon-zone, cluster: us, zone: zone-1}\n"
             "  - parallel:\n      - {wait: dns.answer == EU, timeout: 1m}\n")
    assert _regions(tmp_path, steps) == ["eu"]


def test_a_scenario_that_takes_no_front_door_out_expects_no_takeover(tmp_path: Path) -> None:
    assert _regions(tmp_path, "  - {fault: cordon-zone, cluster: us, zone: zone-1}\n  - wait: 1m\n") == []


@pytest.fixture
async def server() -> AsyncIterator[int]:
    """An endpoint whose /healthz answers 200, /moved 301 and anything else 404."""
    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def moved(_request: web.Request) -> web.Response:
        return web.Response(status=301, headers={"Location": "/healthz"})

    app = web.Application()
    app.router.add_get("/healthz", health)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


async def _ask(port: int, monitor: dict[str, object]) -> str | None:
    return await ask_as_the_monitor(Monitor.model_validate(monitor), "eu.t", "127.0.0.1", port, 1.0)


async def test_the_endpoint_is_healthy_only_when_it_answers_the_monitor_as_it_expects(server: int) -> None:
    assert await _ask(server, {"path": "/healthz"}) is None
    assert await _ask(server, {"path": "/helthz"}) == (
        f"endpoint eu.t (127.0.0.1:{server}) answers the monitor's GET /helthz with 404, which the monitor "
        "does not count as healthy: Traffic Manager sees it Degraded")
    # A redirect fails the default monitor (200 only) but not one that expects 200-399.
    assert await _ask(server, {"path": "/moved"}) is not None
    redirects_ok = {"path": "/moved", "expectedStatusCodeRanges": [{"min": 200, "max": 399}]}
    assert await _ask(server, redirects_ok) is None
    assert await _ask(server, {"protocol": "TCP"}) is None
