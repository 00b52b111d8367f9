"""junit.xml: valid XML that CI systems count right."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from reports.junit import JUnitReporter
from reports.record import RunRecord


def _suite(data: dict[str, Any]) -> tuple[ET.Element, ET.Element]:
    text = JUnitReporter().render(RunRecord(**data), Path("unread"))  # type: ignore[typeddict-item]
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.split("\n", 1)[1])
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    return root, suite


def _counts(element: ET.Element) -> tuple[str | None, ...]:
    return element.get("tests"), element.get("failures"), element.get("errors")


def test_one_case_per_expectation_plus_the_drill_and_its_rollback(run_data: dict[str, Any]) -> None:
    root, suite = _suite(run_data)
    assert suite.get("name") == "us-outage"
    assert [c.get("name") for c in suite.findall("testcase")] == [
        "dns.failover_time < 3m", "users.downtime < 4m", "dns.failback_time < 5m", "web_eu.min_ready >= 3",
        "drill", "rollback"]
    assert {c.get("classname") for c in suite.findall("testcase")} == {"drill.us-outage"}
    # Two expectations failed and the rollback is incomplete; the drill case itself ran as planned.
    assert _counts(suite) == _counts(root) == ("6", "3", "0")
    assert len(suite.findall("testcase/failure")) == 3
    assert suite.get("time") == "120.000"  # wall-clock seconds, as CI counts them
    assert suite.get("timestamp") == "2026-11-22T03:18:00"
    properties = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert properties["verdict"] == "failed"
    assert properties["time_scale"] == "30"


def test_a_failed_expectation_carries_the_measured_value_and_its_error(run_data: dict[str, Any]) -> None:
    _, suite = _suite(run_data)
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases["users.downtime < 4m"].find("failure")
    assert failure is not None
    assert failure.get("message") == "users.downtime < 4m: measured 262.5 s ± 0.3 s"
    unmeasured = cases["dns.failback_time < 5m"].find("failure")
    assert unmeasured is not None
    assert unmeasured.get("message") == "dns.failback_time < 5m: unmeasured"
    assert cases["dns.failover_time < 3m"].find("failure") is None


def test_the_rollback_case_fails_while_a_fault_is_still_in_place(run_data: dict[str, Any]) -> None:
    _, suite = _suite(run_data)
    failure = suite.find("testcase[@name='rollback']/failure")
    assert failure is not None
    assert failure.get("message") == "1 fault(s) still in place: manual action needed"
    assert failure.text == ("s2: cordon-zone in us (failed: 403 Forbidden): cordon the 2 schedulable "
                            "nodes of "
                            "zone zone-1 in us; objects: us/Node//us-zone-1-a, us/Node//us-zone-1-b")


def test_an_aborted_run_is_an_error_of_the_drill_case(passed_run: dict[str, Any]) -> None:
    passed_run.update(verdict="aborted", exit_code=2, reason="guard users.error_rate > 80% for 8m tripped")
    root, suite = _suite(passed_run)
    error = suite.find("testcase[@name='drill']/error")
    assert error is not None
    assert error.get("type") == "aborted"
    assert error.get("message") == "guard users.error_rate > 80% for 8m tripped"
    assert _counts(suite) == _counts(root) == ("6", "0", "1")


def test_a_timed_out_wait_fails_the_drill_case(passed_run: dict[str, Any]) -> None:
    passed_run.update(verdict="failed", exit_code=1,
                      reason="wait step-3 (dns.answer == eu) timed out after 10m")
    passed_run["timeline"].append({"t": 671.3, "at": "2026-11-22T03:18:22.500Z", "event": "wait_timed_out",
                                   "step": "step-3", "detail": "dns.answer == eu"})
    _, suite = _suite(passed_run)
    failure = suite.find("testcase[@name='drill']/failure")
    assert failure is not None
    assert failure.get("message") == "wait step-3 (dns.answer == eu) timed out after 10m"
    assert _counts(suite) == ("6", "1", "0")


def test_a_passed_run_has_no_failures_and_the_timeline_as_output(passed_run: dict[str, Any]) -> None:
    root, suite = _suite(passed_run)
    assert _counts(suite) == _counts(root) == ("6", "0", "0")
    out = suite.findtext("testcase[@name='drill']/system-out")
    assert out is not None
    assert out.splitlines()[2] == ("01:11.3 fault_applied [s1] scaled ingress-nginx/ingress-nginx-controller "
                                   "in "
                                   "us from 2 replicas to 0")


def test_text_that_xml_reserves_is_escaped(passed_run: dict[str, Any]) -> None:
    passed_run["scenario"]["name"] = 'a<b>&"c"'
    passed_run["expectations"][0].update(expect="x.y < 3 & z", passed=False, note="<!-- ]]> -->")
    _, suite = _suite(passed_run)
    assert suite.get("name") == 'a<b>&"c"'
    assert suite.findtext("testcase/failure") == "<!-- ]]> -->"


def test_an_inconclusive_expectation_says_so_in_its_failure(run_data: dict[str, Any]) -> None:
    run_data["expectations"][0].update(outcome="inconclusive", passed=False)
    _root, suite = _suite(run_data)
    case = next(c for c in suite.findall("testcase") if c.get("name") == "dns.failover_time < 3m")
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == ("dns.failover_time < 3m: measured 74.2 s ± 0.5 s (inconclusive: the "
                                      "error straddles the bound)")


def test_a_failure_over_trials_names_the_worst_trial_its_phase_and_the_spread(
        swept_run: dict[str, Any]) -> None:
    _, suite = _suite(swept_run)
    failure = suite.find("testcase[@name='users.downtime < 4m']/failure")
    assert failure is not None
    assert failure.get("message") == ("users.downtime < 4m: failed in trial 3 of 4 (phase 0.56 of the 30s "
                                      "probe cycle): measured 262.5 s ± 0.3 s")
    assert failure.text == ("longest run of failures\nover 4 trials: min 210.0 s, median 217.8 s, "
                            "max 262.5 s (210.0 s, 215.5 s, 262.5 s, 220.0 s)")
    properties = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert (properties["trials"], properties["seed"]) == ("4", "7")
