"""The numbers of a whole lab run of us-outage as people read them in report.md and junit.xml: rounded
to their error, no ``± 0``, no float noise, latencies in real milliseconds marked as the lab's, and a
head in the timeline's time base."""

from __future__ import annotations

import re

import pytest
from drillrun import Finished

from reports.base import format_t

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def finished(us_outage_once: Finished) -> Finished:
    return us_outage_once


@pytest.fixture(scope="module")
def report(finished: Finished) -> str:
    return (finished.run_dir / "report.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def junit(finished: Finished) -> str:
    return (finished.run_dir / "junit.xml").read_text(encoding="utf-8")


def test_latency_is_a_real_round_trip_kept_to_the_microsecond(finished: Finished) -> None:
    assert finished.code == 0, finished.output
    latency = finished.metric("users.latency_p50")
    # A loopback request takes milliseconds of real time; scaled by 200 it would be a fraction of a second.
    assert (latency["unit"], latency["value"] < 0.1) == ("s", True), latency
    # Rounded to the millisecond in run.json, 1.7 ms would read 2 ms: kept to the microsecond.
    assert latency["error"] > 0, latency
    assert latency["value"] != round(latency["value"], 3), latency


def test_report_shows_latency_in_milliseconds_as_the_labs(report: str) -> None:
    row = next(line for line in report.splitlines() if line.startswith("| `users.latency_p50` |"))
    assert re.match(r"\| `users.latency_p50` \| \d+(\.\d+)? ms ± \d+(\.\d+)? ms \| ", row), row
    assert row.endswith("not a rehearsal of production latency |"), row


@pytest.mark.parametrize("name", ["report", "junit"])
def test_no_float_noise_and_no_plus_minus_zero(name: str, request: pytest.FixtureRequest) -> None:
    text: str = request.getfixturevalue(name)
    assert not re.findall(r"\d\.\d{4,}", text)
    assert not re.findall(r"± 0(\.0+)?(?![\d.])", text)
    assert "plus the" not in text


def test_the_head_is_in_the_timelines_time_base(finished: Finished, report: str) -> None:
    head = report.split("\n## ", 1)[0]
    assert head.count(f"lab time ({finished.record['time_scale']:g}x)") == 1
    last = max(e["t"] for e in finished.record["timeline"])
    assert f"| duration | {format_t(last)} (wall clock: " in head
    assert f"| incident start | t = {format_t(finished.record['incident_start_t'])} |" in head
