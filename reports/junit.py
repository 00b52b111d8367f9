"""``junit.xml``: the run as CI systems read test results.

One ``testsuite`` named after the scenario holds one ``testcase`` per expectation (a ``failure``
with the measured value and its error when it did not hold), one for the drill itself (an ``error``
when the run was aborted or broke, with the reason; a ``failure`` when a condition wait timed out or
the run failed for a reason no expectation shows) and one for the rollback (a ``failure`` when a
fault is still in place). The timeline goes in the drill case's ``system-out``. Over several trials
a failure names the trial that broke the expectation and its phase of the probe cycle, and its text
gives the metric's min / median / max over the trials.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from reports.base import describe_trial, format_t, format_value
from reports.record import ExpectationRecord, MetricRecord, RollbackRecord, RunRecord, TimelineRecord

_INCOMPLETE = ("failed", "manual")


class JUnitReporter:
    """Renders ``junit.xml``."""

    filename: ClassVar[str] = "junit.xml"

    def render(self, run: RunRecord, run_dir: Path) -> str:
        """The whole XML document."""
        name = run["scenario"]["name"]
        classname = f"drill.{name}"
        suite = ET.Element("testsuite", name=name, timestamp=_timestamp(run["started_at"]),
                           time=_seconds(run["started_at"], run["ended_at"]))
        properties = ET.SubElement(suite, "properties")
        for key, value in (
            ("run_id", run["run_id"]), ("verdict", run["verdict"]), ("exit_code", str(run["exit_code"])),
            ("environment", run["environment"]["name"]), ("time_scale", f"{run['time_scale']:g}"),
            ("scenario_file", run["scenario"]["file"]),
            *((("trials", str(sweep["run"])), ("seed", str(sweep["seed"])))
              if (sweep := run.get("sweep")) is not None else ()),
        ):
            ET.SubElement(properties, "property", name=key, value=value)

        failures = errors = 0
        for e in run["expectations"]:
            case = ET.SubElement(suite, "testcase", classname=classname, name=e["expect"])
            if not e["passed"]:
                failures += 1
                metric = run["metrics"].get(e["metric"])
                measured = format_value(e["value"], e["unit"], metric["error"] if metric else None)
                where = _where(run, e)
                message = (f"{e['expect']}: {f'failed in {where}: ' if where else ''}"
                           f"{'measured ' if e['value'] is not None else ''}{measured}")
                if e.get("outcome") == "inconclusive":
                    message += " (inconclusive: the error straddles the bound)"
                failure = ET.SubElement(case, "failure", type="expectation", message=message)
                lines = [e["note"], _spread(metric) if where and metric else ""]
                failure.text = "\n".join(line for line in lines if line) or None

        drill = ET.SubElement(suite, "testcase", classname=classname, name="drill")
        if run["verdict"] in ("error", "aborted"):
            errors += 1
            ET.SubElement(drill, "error", type=run["verdict"], message=run["reason"] or run["verdict"])
        elif run["verdict"] == "failed" and self._drill_failed(run):
            failures += 1
            ET.SubElement(drill, "failure", type="failed", message=run["reason"] or "failed")
        ET.SubElement(drill, "system-out").text = "\n".join(_event_line(e) for e in run["timeline"])

        rollback = ET.SubElement(suite, "testcase", classname=classname, name="rollback")
        stuck = [u for u in run["rollback"] if u["outcome"] in _INCOMPLETE]
        if stuck:
            failures += 1
            failure = ET.SubElement(rollback, "failure", type="rollback_incomplete",
                                    message=f"{len(stuck)} fault(s) still in place: manual action needed")
            failure.text = "\n".join(_undo_line(u) for u in stuck)

        tests = len(run["expectations"]) + 2
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", "0")
        root = ET.Element("testsuites", name="drill", tests=str(tests), failures=str(failures),
                          errors=str(errors), time=suite.get("time", "0"))
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    @staticmethod
    def _drill_failed(run: RunRecord) -> bool:
        # A failed expectation already has its own failing case; the drill case fails for what no
        # expectation shows: a condition wait that timed out.
        timed_out = any(e["event"] == "wait_timed_out" for e in run["timeline"])
        return timed_out or all(e["passed"] for e in run["expectations"])


def _where(run: RunRecord, expectation: ExpectationRecord) -> str:
    """The trial that decided ``expectation``, in words, when the run had several."""
    trials = run.get("trials") or []
    worst = expectation.get("worst_trial")
    if len(trials) < 2 or worst is None:
        return ""
    sweep = run.get("sweep")
    return describe_trial(worst, len(trials), expectation.get("worst_phase"),
                          sweep["probe_interval"] if sweep else None)


def _spread(metric: MetricRecord) -> str:
    spread = metric.get("trials")
    if spread is None or spread["min"] is None:
        return ""
    def shown(value: float | str | None) -> str:
        return format_value(value, metric["unit"], metric["error"], show_error=False)

    values = ", ".join(shown(v) for v in spread["values"])
    return (f"over {len(spread['values'])} trials: min {shown(spread['min'])}, median "
            f"{shown(spread['median'])}, max {shown(spread['max'])} ({values})")


def _event_line(event: TimelineRecord) -> str:
    step = f" [{event['step']}]" if event["step"] else ""
    return f"{format_t(event['t'])} {event['event']}{step} {event['detail']}".rstrip()


def _undo_line(undo: RollbackRecord) -> str:
    outcome = f"{undo['outcome']}: {undo['error']}" if undo["error"] else undo["outcome"]
    objects = ", ".join(undo["objects"]) or "none listed"
    where = f"{undo['step']}: {undo['fault']} in {undo['region']}"
    return f"{where} ({outcome}): {undo['summary']}; objects: {objects}"


def _timestamp(at: str) -> str:
    # JUnit's schema wants a date-time without a zone; the record's times are UTC.
    parsed = _parse(at)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S") if parsed else at


def _seconds(start: str, end: str) -> str:
    begin, finish = _parse(start), _parse(end)
    if begin is None or finish is None:
        return "0"
    return f"{max((finish - begin).total_seconds(), 0.0):.3f}"


def _parse(at: str) -> datetime | None:
    try:
        return datetime.fromisoformat(at)
    except ValueError:
        return None
