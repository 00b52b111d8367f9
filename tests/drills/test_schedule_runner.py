"""The ``drill schedule`` service without a lab: a fire the service itself cannot run is posted as an
error and its environment's next fires still run; a stopping service starts nothing more; a calendar it
cannot keep is a mistake reported with its path, not a traceback. (Drills run for real in
tests/integration/test_schedule_service.py.)"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from drills.cli import main
from drills.schedule import load_schedule
from drills.scheduler import Service

ROOT = Path(__file__).resolve().parents[2]
QUIET = ROOT / "tests" / "integration" / "scenarios" / "quiet.yaml"


class _Webhook(ThreadingHTTPServer):
    """A local generic webhook: every JSON body POSTed to it, in a queue."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[dict[str, Any]] = queue.Queue()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        self.server.bodies.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the bodies."""


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    server = _Webhook()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


def _schedule(tmp_path: Path, drills: str, head: str = "") -> Path:
    path = tmp_path / "schedule.yaml"
    path.write_text(f"apiVersion: drill/v1\nkind: Schedule\n{head}drills:\n{drills}", encoding="utf-8")
    return path


def test_a_fire_the_service_cannot_start_is_posted_as_an_error_and_the_next_fires_still_run(
        tmp_path: Path, webhook: _Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    schedule = load_schedule(_schedule(tmp_path, f"  - {{name: every-second, scenario: {QUIET}, "
                                                 f"cron: '* * * * * *'}}\n",
                                       head=f"notify: {{webhook: ['{webhook.url}']}}\n"))
    # drill run cannot start: its interpreter is gone (a virtualenv removed under a running service).
    monkeypatch.setattr(sys, "executable", str(tmp_path / "gone" / "python"))
    posted: list[dict[str, Any]] = []

    def stop_after_two() -> None:
        try:
            posted.extend(webhook.bodies.get(timeout=30) for _ in range(2))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    log = io.StringIO()
    service = Service(schedule, tmp_path / "runs", out=log)
    stopper = threading.Thread(target=stop_after_two)
    stopper.start()
    try:
        assert service.run() == 0
    finally:
        stopper.join()
    assert [(p["drill"], p["verdict"]) for p in posted] == [("every-second", "error")] * 2, log.getvalue()
    assert "the service could not run it: FileNotFoundError" in posted[0]["reason"]
    assert posted[0]["scheduled_at"] < posted[1]["scheduled_at"]

    service.fire("every-second", datetime.now(UTC))
    assert "not started: the service is stopping" in log.getvalue().splitlines()[-1]
    assert not [t for t in threading.enumerate() if t.name.startswith("env ")]


def test_a_calendar_in_a_folder_it_cannot_make_is_a_mistake_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    store = blocker / "schedule.sqlite"
    path = _schedule(tmp_path, f"  - {{name: d, scenario: {QUIET}, cron: '0 3 * * *'}}\n",
                     head=f"store: {store}\n")
    assert main(["schedule", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"cannot keep the calendar at {store}: {blocker}: File exists" in err
    assert "Traceback" not in err
