"""Telling people how a scheduled drill went: a JSON body for a generic webhook, a message for a
Slack-compatible incoming webhook, and posting them.

The generic body is stable, for tools: ``drill``, ``scenario``, ``environment``, ``scheduled_at``,
``run_id``, ``verdict`` (a run's verdict, or ``missed`` for a fire that came too late to run),
``exit_code``, ``reason``, ``metrics`` (each expectation's metric: value, unit, error, passed, and
``outcome``: passed, failed or inconclusive, the last counted as passed or not as the scenario says),
``reports`` (paths), ``started_at`` and ``ended_at``. The Slack message is ``{"text", "blocks"}`` as
Slack's incoming webhooks take it (``text`` is the notification's fallback). Posting never raises: a
webhook that is down is reported by the service and the next result is posted all the same.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from typing_extensions import TypedDict

from drills.history import key_metrics
from drills.schedule import Notify
from reports.base import format_value
from reports.record import ExpectationRecord, RunRecord
from reports.record import Outcome as ExpectationOutcome

POST_TIMEOUT_S = 10.0
"""How long one webhook may take to answer; a slow one must not hold the next drill back for long."""
_ICONS = {"passed": ":white_check_mark:", "failed": ":x:", "aborted": ":warning:", "error": ":warning:",
          "missed": ":double_vertical_bar:"}


class MetricSummary(TypedDict):
    """A key metric of the run: one an expectation names, with its value, unit, error, whether its
    expectation counts as kept and what the measurement said (``inconclusive``: its error straddles the
    bound)."""

    value: float | str | None
    unit: str | None
    error: float | None
    passed: bool
    outcome: ExpectationOutcome


@dataclass(frozen=True)
class Outcome:
    """What one fire of a scheduled drill came to."""

    drill: str
    scenario: str
    environment: str
    scheduled_at: str
    verdict: str
    exit_code: int | None
    reason: str = ""
    run_id: str | None = None
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)
    started_at: str | None = None
    ended_at: str | None = None


def metric_summaries(record: RunRecord) -> dict[str, MetricSummary]:
    """The run's key metrics (:func:`drills.history.key_metrics`), each with its first expectation's
    outcome."""
    first: dict[str, ExpectationRecord] = {}
    for e in record["expectations"]:
        first.setdefault(e["metric"], e)
    summaries: dict[str, MetricSummary] = {}
    for metric in key_metrics(record):
        expectation = first[metric.name]
        # A value that is not a number (a region's name) is the history's None: the expectation has it.
        value = expectation["value"] if metric.value is None else metric.value
        outcome = expectation.get("outcome") or ("passed" if expectation["passed"] else "failed")
        summaries[metric.name] = MetricSummary(value=value, unit=metric.unit or None, error=metric.error,
                                               passed=expectation["passed"], outcome=outcome)
    return summaries


def json_body(outcome: Outcome) -> dict[str, Any]:
    """The generic webhook's body."""
    return asdict(outcome)


def slack_body(outcome: Outcome) -> dict[str, Any]:
    """A Slack incoming-webhook message: a headline, the key metrics, where the reports are."""
    code = "" if outcome.exit_code is None else f" (exit {outcome.exit_code})"
    headline = (f"drill {outcome.drill}: {outcome.scenario} on {outcome.environment}: "
                f"{outcome.verdict.upper()}{code}")
    lines = [f"{_ICONS.get(outcome.verdict, '')} *{headline}*".strip()]
    if outcome.reason:
        lines.append(outcome.reason)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    if outcome.metrics:
        shown = [f"{_mark(m)}  `{name}` {format_value(m['value'], m['unit'], m['error'])}"
                 for name, m in outcome.metrics.items()]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(shown)}})
    context = [f"scheduled {outcome.scheduled_at}"]
    if outcome.run_id:
        context.append(f"run {outcome.run_id}")
    context.extend(outcome.reports)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text} for text in context]})
    return {"text": headline, "blocks": blocks}


def _mark(metric: MetricSummary) -> str:
    if metric["outcome"] == "inconclusive":
        return f"inconclusive (counted as {'passed' if metric['passed'] else 'failed'})"
    return "ok" if metric["passed"] else "FAIL"


def post(url: str, body: dict[str, Any]) -> str | None:
    """POST ``body`` as JSON to ``url``; what went wrong, or None when the webhook took it (2xx)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "drill-schedule"})
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"
    return None


def send(notify: Notify, outcome: Outcome) -> list[str]:
    """Post ``outcome`` to every webhook of ``notify``; the problems, one per webhook that failed."""
    problems = [post(url, json_body(outcome)) for url in notify.webhook]
    problems += [post(url, slack_body(outcome)) for url in notify.slack]
    return [p for p in problems if p is not None]
