"""report.md: what a person reads after the run, checked section by section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reports.markdown import MarkdownReporter
from reports.record import RunRecord


def _render(data: dict[str, Any]) -> str:
    return MarkdownReporter().render(RunRecord(**data), Path("unread"))  # type: ignore[typeddict-item]


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\n\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section {title!r}"
    return match[1].strip()


def test_the_title_states_scenario_and_verdict_and_the_head_the_time_scale(run_data: dict[str, Any]) -> None:
    text = _render(run_data)
    assert text.splitlines()[0] == "# us-outage: FAILED"
    assert "> The US ingress dies; users must be served from Europe within 3 minutes." in text
    assert "| environment | lab, `/tmp/drill-lab-1/environment.yaml` |" in text
    assert "| exit code | 3 |" in text


def test_the_heads_times_are_in_the_timelines_time_base_and_the_wall_clock_is_labelled(
        run_data: dict[str, Any]) -> None:
    # The run took 2 wall-clock minutes on a lab at 30x: an hour of real-world-equivalent time, as the
    # timeline says (its last event at 60:01.2).
    head = _render(run_data).split("\n## ", 1)[0]
    assert head.count("lab time (30x)") == 1
    assert ("| time | lab time (30x): every time and duration in this report is real-world equivalent; "
            "latencies are real |") in head
    assert "| started | 2026-11-22 03:18:00 UTC |" in head
    assert "| duration | 60:01.2 (wall clock: 120 s) |" in head
    assert "| incident start | t = 01:11.3 |" in head
    assert "03:18:02.5" not in head
    assert "03:20:00" not in head


def test_a_real_environment_runs_in_real_time(run_data: dict[str, Any]) -> None:
    run_data["time_scale"] = 1.0
    run_data["environment"] = {"name": "prod", "file": "environments/prod.yaml", "lab": False}
    head = _render(run_data).split("\n## ", 1)[0]
    assert "| time | real time |" in head
    assert "| duration | 60:01.2 |" in head


def test_why_gives_the_reason_or_says_all_held(run_data: dict[str, Any], passed_run: dict[str, Any]) -> None:
    assert _section(_render(run_data), "Why") == run_data["reason"]
    assert _section(_render(passed_run), "Why") == (
        "Every expectation held, no guard tripped and every fault was undone.")


def test_expectations_show_value_unit_error_and_result(run_data: dict[str, Any]) -> None:
    assert _section(_render(run_data), "Expectations").splitlines() == [
        "| expectation | measured | result | note |",
        "| --- | --- | --- | --- |",
        "| `dns.failover_time < 3m` | 74.2 s ± 0.5 s | pass |  |",
        "| `users.downtime < 4m` | 262.5 s ± 0.3 s | **FAIL** | longest run of failures |",
        "| `dns.failback_time < 5m` | unmeasured | **FAIL** | unmeasured: the baseline answer never "
        "returned |",
        "| `web_eu.min_ready >= 3` | 3 | pass |  |",
    ]


def test_every_metric_is_listed_with_its_unit(run_data: dict[str, Any]) -> None:
    rows = _section(_render(run_data), "Metrics").splitlines()[2:]
    assert rows == [
        "| `dns.failback_time` | unmeasured | the baseline answer never returned |",
        "| `dns.failover_time` | 74.2 s ± 0.5 s |  |",
        "| `users.availability` | 41.25% ± 0.10% |  |",
        "| `users.downtime` | 262.5 s ± 0.3 s | longest run of failures |",
        "| `users.region` | eu | at the end |",
        "| `web_eu.min_ready` | 3 |  |",
    ]


def test_guards_say_whether_and_when_they_tripped(run_data: dict[str, Any]) -> None:
    assert _section(_render(run_data), "Guards").splitlines()[2:] == [
        "| `users.error_rate > 80% for 8m` | held |"]
    run_data["guards"][0].update(tripped=True, t=312.45)
    assert _section(_render(run_data), "Guards").splitlines()[2:] == [
        "| `users.error_rate > 80% for 8m` | **tripped** at 05:12.4 |"]


def test_the_timeline_gives_t_as_minutes_and_seconds_and_escapes_cells(run_data: dict[str, Any]) -> None:
    rows = _section(_render(run_data), "Timeline").splitlines()[4:]
    assert rows[0] == "| 00:00.0 | probes_started |  | 3 probes: dns, users, web_eu |"
    assert rows[2] == ("| 01:11.3 | fault_applied | s1 | scaled ingress-nginx/ingress-nginx-controller in us "
                       "from 2 replicas to 0 |")
    assert rows[4] == "| 02:25.5 | wait_done | step-3 | dns.answer == eu \\| after 74.2 s |"
    assert rows[-1] == "| 60:01.2 | run_ended |  | failed |"


def test_an_incomplete_rollback_says_what_to_undo_by_hand(run_data: dict[str, Any],
                                                          passed_run: dict[str, Any]) -> None:
    section = _section(_render(run_data), "Rollback")
    assert ("| s2 | cordon-zone | us | **failed** | 3 | 07:26.0 | cordon the 2 schedulable nodes of zone "
            "zone-1 in us; error: 403 Forbidden |") in section
    assert "| s1 | kill-ingress | us | reverted | 1 | 07:27.1 |" in section
    assert section.split("**Manual action needed.**")[1].strip().splitlines()[2:] == [
        "- step `s2`, cordon-zone in us (revert failed: 403 Forbidden): cordon the 2 schedulable nodes of "
        "zone zone-1 in us",
        "  - `us/Node//us-zone-1-a`",
        "  - `us/Node//us-zone-1-b`",
    ]
    assert "Manual action" not in _render(passed_run)


def test_rollback_manual_is_a_manual_action_too(passed_run: dict[str, Any]) -> None:
    passed_run["rollback"][0]["outcome"] = "manual"
    section = _section(_render(passed_run), "Rollback")
    assert "- step `s2`, cordon-zone in us (rollback: manual): cordon the 2 schedulable nodes" in section


def test_steady_state_before_and_after(run_data: dict[str, Any], passed_run: dict[str, Any]) -> None:
    assert _section(_render(run_data), "Steady state") == (
        "- before the first fault: seen\n- after rollback: **did not return**")
    assert _section(_render(passed_run), "Steady state") == (
        "- before the first fault: seen\n- after rollback: returned at 03:10.2")


def test_probes_say_when_they_were_blind_and_a_record_without_blind_intervals_still_renders(
        run_data: dict[str, Any]) -> None:
    probes = _section(_render(run_data), "Probes")
    assert "| `web_eu` | replicas | 1 s | 3601 | never |" in probes
    run_data["probes"]["web_eu"]["blind"] = [
        {"start": 62.0, "end": 90.5, "samples": 28, "reason": "pods watch: HTTP 503", "trial": 1}]
    probes = _section(_render(run_data), "Probes")
    blind = "01:02.0 to 01:30.5 (28 samples failed: pods watch: HTTP 503)"
    assert f"| `web_eu` | replicas | 1 s | 3601 | {blind} |" in probes
    assert "a metric whose window it overlaps is unmeasured" in probes


def test_a_run_that_never_started_its_steps_still_renders(run_data: dict[str, Any]) -> None:
    run_data.update(verdict="aborted", exit_code=2, reason="steady state not seen: dns has no answer",
                    incident_start=None, incident_start_t=None, timeline=[], metrics={}, expectations=[],
                    guards=[], rollback=[], probes={}, versions={})
    text = _render(run_data)
    assert text.startswith("# us-outage: ABORTED\n")
    assert "| incident start | no fault was applied |" in text
    assert _section(text, "Why") == "steady state not seen: dns has no answer"
    assert _section(text, "Expectations") == "The scenario states none."
    assert _section(text, "Rollback") == "No fault needed undoing."


DESIGN = {
    "settings": "Traffic Manager: routing Priority, probe HTTP /healthz every 30s, timeout 10s, "
                "5 tolerated failures, TTL 30s",
    "problems": [],
    "expectations": [
        {"expect": "dns.failover_time < 3m", "metric": "dns.failover_time", "breaks": True,
         "verdict": "the design allows up to 190 s", "reasoning": "Degraded on the 6th failed probe",
         "disagreement": "", "window": {"low": 160.0, "high": 190.0, "high_open": True, "unit": "s",
                                        "text": "[160 s, 190 s)"}},
        {"expect": "web_eu.min_ready >= 3", "metric": "web_eu.min_ready", "breaks": False, "verdict": "",
         "reasoning": "no fault takes pods of eu/shop/web away: 3 stay ready", "disagreement": "",
         "window": {"low": 3.0, "high": 3.0, "high_open": False, "unit": "count", "text": "[3, 3]"}},
        {"expect": "users.downtime < 4m", "metric": "users.downtime", "breaks": False, "verdict": "",
         "reasoning": "unknown: the environment does not state the Traffic Manager TTL", "disagreement": "",
         "window": None},
    ],
}


def test_the_design_review_shows_each_window_and_the_expectations_the_settings_break(
        run_data: dict[str, Any]) -> None:
    run_data["design"] = DESIGN
    section = _section(_render(run_data), "Design review")
    assert section.splitlines()[0] == (
        "What the settings allow in every phase of the probe cycle and the TTL (Traffic Manager: routing "
        "Priority, probe HTTP /healthz every 30s, timeout 10s, 5 tolerated failures, TTL 30s).")
    assert ("| `dns.failover_time < 3m` | [160 s, 190 s) | **breaks**: the design allows up to 190 s | "
            "Degraded on the 6th failed probe |") in section
    assert "| `web_eu.min_ready >= 3` | [3, 3] | holds |" in section
    assert ("| `users.downtime < 4m` | — | — | unknown: the environment does not state the Traffic Manager "
            "TTL |") in section


def test_an_inconclusive_expectation_is_shown_as_such(run_data: dict[str, Any]) -> None:
    run_data["expectations"][0].update(outcome="inconclusive", passed=False)
    run_data["expectations"][3].update(outcome="inconclusive", passed=True)
    section = _section(_render(run_data), "Expectations")
    assert "| `dns.failover_time < 3m` | 74.2 s ± 0.5 s | **INCONCLUSIVE** |" in section
    assert "| `web_eu.min_ready >= 3` | 3 | inconclusive (pass) |" in section


def test_a_record_without_a_design_review_has_no_such_section(run_data: dict[str, Any]) -> None:
    assert "## Design review" not in _render(run_data)


def test_trials_show_each_metrics_spread_the_worst_phase_and_each_trial(swept_run: dict[str, Any]) -> None:
    text = _render(swept_run)
    expectations = _section(text, "Expectations")
    assert ("| `users.downtime < 4m` | 262.5 s ± 0.3 s | **FAIL** | failed in trial 3 of 4 (phase 0.56 of "
            "the 30s probe cycle); longest run of failures |") in expectations
    assert ("| `users.downtime` | 262.5 s ± 0.3 s | 210.0 s / 217.8 s / 262.5 s (phase 0.56) |"
            in _section(text, "Metrics"))
    trials = _section(text, "Trials")
    assert trials.startswith("4 trials, the first fault of each placed at its phase of endpoint us's 30 s "
                             "probe cycle (0: at a probe deadline); seed 7.")
    assert "| 3 | 0.56 | 10:20.0 | 14:20.0 | 14:59.0 | 15:00.0 |" in trials


def test_one_trial_shows_no_trials_section(run_data: dict[str, Any]) -> None:
    assert "## Trials" not in _render(run_data)


def test_the_blast_radius_gives_each_rule_at_the_worst_moment(run_data: dict[str, Any]) -> None:
    assert "## Blast radius" not in _render(run_data)
    run_data["blast_radius"] = {
        "refused": True, "worst_moment": ["cordon-us", "kill-us"], "nodes": {"us": 2}, "pods": {"us": 2},
        "limits": {"maxNodes": 1, "maxPods": 500}, "estimated": ["a scaled-away deployment's pods are its "
                                                                "replica count when prepared"],
        "rules": [{"rule": "maxNodes", "passed": False, "detail": "2 nodes (us 2), limit 1"},
                  {"rule": "maxPods", "passed": True, "detail": "2 pods (us 2), limit 500"}]}
    section = _section(_render(run_data), "Blast radius")
    assert section.startswith("At the worst moment (`cordon-us`, `kill-us` in effect together), computed "
                              "before the first fault: the drill was **refused**.")
    assert "| `limits.maxNodes` | **refused** | 2 nodes (us 2), limit 1 |" in section
    assert "| `limits.maxPods` | pass | 2 pods (us 2), limit 500 |" in section
    assert section.endswith("Estimated: a scaled-away deployment's pods are its replica count when prepared.")


def test_the_rollback_shows_each_object_against_its_state_before_the_drill(run_data: dict[str, Any]) -> None:
    assert "checked against its state before the drill" not in _render(run_data)
    run_data["restored"] = [
        {"object": "us/Deployment/ingress-nginx/ingress-nginx-controller", "outcome": "drift", "trial": 1,
         "detail": "changed by someone else during the drill, left as it is: replicas is 3 (before the drill "
                   "2; this run set 0)"},
        {"object": "us/Node//us-1", "outcome": "restored", "trial": 1,
         "detail": "restored unschedulable false"}]
    section = _section(_render(run_data), "Rollback")
    assert ("Every object the faults touched, checked against its state before the drill (1 restored, "
            "1 drifted):") in section
    assert ("| `us/Deployment/ingress-nginx/ingress-nginx-controller` | **drift** | 1 | changed by someone "
            "else during the drill, left as it is: replicas is 3 (before the drill 2; this run set 0) |"
            ) in section
    assert "| `us/Node//us-1` | restored | 1 | restored unschedulable false |" in section
    assert "**Drift**: someone else changed an object during the drill" in section
