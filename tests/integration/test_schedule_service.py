"""``drill schedule`` against a lab: fires at set seconds run as ``drill run`` children, one at a time on
one environment, survive restarts of the service without being lost or repeated, and reach a webhook
receiver; SIGTERM to the service rolls the running drill back before the service exits, and a fire that
was waiting its turn runs at the next start; a fire missed beyond the grace is posted, not run.

The services run in this process (stopped with SIGTERM, as a user stops one), except where the signal
must come from outside, as it does to a service in production."""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from drillrun import ROOT, TEST_SCENARIOS, unchanged

from drills.cli import main
from drills.environment import Environment
from drills.labprocess import LabProcess
from drills.schedule import load_schedule
from drills.scheduler import Service

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab

BRIEF_CORDON = """\
apiVersion: drill/v1
name: brief-cordon
description: A zone is cordoned for 20 seconds and uncordoned.
probes:
  web_us: {kind: replicas, cluster: us, namespace: shop, deployment: web, every: 1s}
steps:
  - id: cordon-zone-1
    fault: cordon-zone
    cluster: us
    zone: zone-1
  - wait: 20s
expect:
  - web_us.min_ready >= 2
"""
START_MARGIN_S = 8.0
"""How far ahead the fires are set: the first service must be up and stopped again before them."""


class Receiver:
    """A local webhook: every body POSTed to ``/json`` or ``/slack``, as (path, body), in a queue."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(30), "the webhook receiver did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def take(self, count: int, *, timeout: float = 120.0) -> list[tuple[str, dict[str, Any]]]:
        """The next ``count`` bodies, waiting for each."""
        return [self.bodies.get(timeout=timeout) for _ in range(count)]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{kind}", self._receive)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _receive(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        self.bodies.put((request.match_info["kind"], await request.json()))
        return web.Response(text="ok")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


class _Log(io.StringIO):
    """The service's log, noticing when it is ready."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        if "ready: waiting for the next fire" in text:
            self.ready.set()
        return super().write(text)


def _serve(schedule: Path, runs: Path, *, until: Callable[[], object] = lambda: None) -> str:
    """Run the service in this process until it is ready and ``until`` has returned, then stop it with
    SIGTERM; its log."""
    log = _Log()
    served = threading.Event()

    def stop() -> None:
        try:
            if log.ready.wait(60) and not served.is_set():
                until()
        finally:
            if log.ready.is_set() and not served.is_set():
                os.kill(os.getpid(), signal.SIGTERM)  # its handler is installed once it says it is ready

    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        assert Service(load_schedule(schedule), runs, out=log).run() == 0
    finally:
        served.set()
        log.ready.set()
        stopper.join()
    return log.getvalue()


def _schedule(folder: Path, receiver: Receiver, drills: str) -> Path:
    file = folder / "schedule.yaml"
    file.write_text(f"apiVersion: drill/v1\nkind: Schedule\nmisfireGrace: 2m\n"
                    f"notify: {{webhook: ['{receiver.url}/json'], slack: ['{receiver.url}/slack']}}\n"
                    f"drills:\n{drills}")
    return file


def _service(spawn: Callable[..., Spawned], schedule: Path, runs: Path) -> Spawned:
    return spawn([sys.executable, "-m", "drills", "schedule", str(schedule), "--runs-dir", str(runs)],
                 cwd=ROOT)


def _records(runs: Path) -> list[dict[str, Any]]:
    made = [d / "run.json" for d in runs.iterdir() if (d / "run.json").is_file()] if runs.exists() else []
    return sorted((json.loads(f.read_text()) for f in made), key=lambda r: r["started_at"])


def test_two_drills_on_one_environment_take_turns_across_restarts_and_are_posted(
        lab: LabProcess, lab_env: Environment, receiver: Receiver, runs: Path, tmp_path: Path) -> None:
    (tmp_path / "brief-cordon.yaml").write_text(BRIEF_CORDON)
    fire = (datetime.now(UTC) + timedelta(seconds=START_MARGIN_S)).replace(microsecond=0)
    cron = f"{fire.second} {fire.minute} {fire.hour} * * *"  # once a day, at this second
    env = lab.environment_file
    schedule = _schedule(tmp_path, receiver, f"""\
  - {{name: quiet, scenario: {TEST_SCENARIOS / 'quiet.yaml'}, env: {env}, cron: '{cron}',
     options: [--trials, '1']}}
  - {{name: cordon, scenario: brief-cordon.yaml, env: {env}, cron: '{cron}', options: [--trials, '1']}}
""")

    # The first service plans the calendar and is stopped before the fires: they fall due while no
    # service runs.
    _serve(schedule, runs)
    assert datetime.now(UTC) < fire, "the service took too long to start for this test's margin"
    assert not _records(runs)
    time.sleep(max(0.0, (fire - datetime.now(UTC)).total_seconds()) + 1)  # the fire passes while down

    posted: list[tuple[str, dict[str, Any]]] = []
    with unchanged(lab_env):
        # Both drills, each to the JSON and the Slack webhook.
        log = _serve(schedule, runs, until=lambda: posted.extend(receiver.take(4)))
    started = [line for line in log.splitlines() if f"fire of {fire:%Y-%m-%d %a %H:%M:%S} UTC" in line
               and ": drill run " in line]
    assert len(started) == 2, log  # each missed fire ran once

    records = _records(runs)
    assert [r["verdict"] for r in records] == ["passed", "passed"], log
    assert {r["scenario"]["name"] for r in records} == {"quiet", "brief-cordon"}
    assert records[0]["ended_at"] <= records[1]["started_at"], "two drills overlapped on one environment"
    assert records[0]["environment"]["name"] == records[1]["environment"]["name"]

    bodies = {(kind, body.get("drill") or body["text"].split(":")[0].removeprefix("drill ")): body
              for kind, body in posted}
    assert set(bodies) == {("json", "quiet"), ("json", "cordon"), ("slack", "quiet"), ("slack", "cordon")}
    by_id = {r["run_id"]: r for r in records}
    for name in ("quiet", "cordon"):
        body = bodies["json", name]
        record = by_id[body["run_id"]]
        assert body["scenario"] == record["scenario"]["name"]
        assert body["environment"] == record["environment"]["name"]
        assert (body["verdict"], body["exit_code"]) == ("passed", 0)
        assert datetime.fromisoformat(body["scheduled_at"]) == fire
        assert (body["started_at"], body["ended_at"]) == (record["started_at"], record["ended_at"])
        assert body["reports"]
        assert all(Path(p).is_file() for p in body["reports"])
        [metric] = body["metrics"]
        assert body["metrics"][metric]["passed"] is True
        assert metric in record["metrics"]
    slack = bodies["slack", "cordon"]
    assert "brief-cordon" in slack["text"]
    assert "PASSED" in slack["text"]
    assert [b["type"] for b in slack["blocks"]] == ["section", "section", "context"]
    assert "web_us.min_ready" in slack["blocks"][1]["text"]["text"]

    # A third start keeps the calendar: the fires already run are not run again, the next is tomorrow.
    third = _serve(schedule, runs)
    tomorrow = f"next fire {fire + timedelta(days=1):%Y-%m-%d %a %H:%M:%S} UTC"
    assert third.count(tomorrow) == 2, third
    assert len(_records(runs)) == 2
    assert receiver.bodies.empty()


def test_sigterm_rolls_the_running_drill_back_before_the_service_exits_and_a_waiting_fire_runs_later(
        lab: LabProcess, lab_env: Environment, receiver: Receiver, runs: Path, tmp_path: Path,
        spawn: Callable[..., Spawned], capsys: pytest.CaptureFixture[str]) -> None:
    fire = (datetime.now(UTC) + timedelta(seconds=START_MARGIN_S)).replace(microsecond=0)
    after = fire + timedelta(seconds=1)  # while the first drill runs: this one waits its turn
    env = lab.environment_file
    schedule = _schedule(tmp_path, receiver, f"""\
  - {{name: held, scenario: {TEST_SCENARIOS / 'held-for-long.yaml'}, env: {env},
     cron: '{fire:%S %M %H} * * *', options: [--trials, '1']}}
  - {{name: quiet, scenario: {TEST_SCENARIOS / 'quiet.yaml'}, env: {env},
     cron: '{after:%S %M %H} * * *', options: [--trials, '1']}}
""")
    with unchanged(lab_env):
        service = _service(spawn, schedule, runs)
        service.wait_for("ready: waiting for the next fire")
        assert datetime.now(UTC) < fire, "the service took too long to start for this test's margin"
        service.wait_for(r"\[held\] .* fault_applied \[cordon-zone-1\]", timeout=120)
        # A second service on the same calendar would run each fire twice: it is refused.
        assert main(["schedule", str(schedule), "--runs-dir", str(runs)]) == 2
        assert "another drill schedule serves the calendar" in capsys.readouterr().err
        service.signal(15)
        assert service.finish(timeout=120) == 0, "\n".join(service.lines)
    log = service.lines
    stopping = next(i for i, line in enumerate(log) if "stopping: SIGTERM to the drill" in line)
    result = next(i for i, line in enumerate(log) if "held: aborted (exit 2)" in line)
    assert stopping < result < len(log) - 1
    assert log[-1].endswith(" stopped")
    assert not any("[quiet]" in line for line in log), "a drill started after SIGTERM"

    [record] = _records(runs)
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert [r["outcome"] for r in record["rollback"]] == ["reverted"]
    posted = dict(receiver.take(2))
    assert (posted["json"]["verdict"], posted["json"]["exit_code"]) == ("aborted", 2)
    assert posted["json"]["run_id"] == record["run_id"]
    assert "ABORTED (exit 2)" in posted["slack"]["text"]

    # The fire that waited its turn is not lost: the next start runs it, and it alone.
    later: list[tuple[str, dict[str, Any]]] = []
    with unchanged(lab_env):
        restarted = _serve(schedule, runs, until=lambda: later.extend(receiver.take(2)))
    assert f"quiet: the fire of {after:%Y-%m-%d %a %H:%M:%S} UTC was waiting when the service stopped: " \
           "it runs now" in restarted, restarted
    held, quiet = _records(runs)
    assert (held["run_id"], quiet["verdict"]) == (record["run_id"], "passed")
    assert held["ended_at"] <= quiet["started_at"]
    assert dict(later)["json"]["run_id"] == quiet["run_id"]


def test_a_fire_missed_beyond_the_grace_is_reported_not_run(receiver: Receiver, runs: Path,
                                                              tmp_path: Path) -> None:
    fire = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    schedule = _schedule(tmp_path, receiver, f"""\
  - {{name: late, scenario: {TEST_SCENARIOS / 'quiet.yaml'}, cron: '{fire:%S %M %H} * * *'}}
""").read_text().replace("misfireGrace: 2m", "misfireGrace: 1s")
    (tmp_path / "schedule.yaml").write_text(schedule)
    _serve(tmp_path / "schedule.yaml", runs)
    assert datetime.now(UTC) < fire, "the service took too long to start for this test's margin"
    time.sleep((fire - datetime.now(UTC)).total_seconds() + 2.5)  # down until the fire is 2.5 s late

    log = _serve(tmp_path / "schedule.yaml", runs)
    assert f"late: fire of {fire:%Y-%m-%d %a %H:%M:%S} UTC missed: " in log, log
    assert "more than the misfire grace of 1 s; not run" in log
    assert not _records(runs)
    posted = dict(receiver.take(2))
    assert (posted["json"]["verdict"], posted["json"]["exit_code"], posted["json"]["run_id"]) == \
        ("missed", None, None)
    assert posted["slack"]["text"].endswith(": MISSED")
