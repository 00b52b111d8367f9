"""The schedule file of ``drill schedule``: which drills run when, where, and who hears of the results.

A schedule names drills, each a scenario run on an environment at the fires of a cron expression in a
time zone, but only inside its allowed windows and never on a blackout date; the file also says where
the service keeps its calendar, how late a missed fire may still run, and which webhooks hear of each
result. Every problem is reported at its place in the file (:mod:`drills.yamlsource`). docs/schedule.md
describes the format; examples/schedule.yaml is a complete one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drills.errors import DrillError, SourceError, SourceErrors, SourceLocation
from drills.units import Duration
from drills.yamlsource import Document, field_names, load, suggest, validation_errors

LAB = "lab"
STORE_FILE = "schedule.sqlite"
"""The calendar's file in the runs dir when the schedule names none."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""Day-of-week numbers as crontab counts them: 0 (and 7) is Sunday."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_SERVICE_SETS = (("--env", "env"), ("--runs-dir", "runs_dir"), ("--yes", "yes"))
"""The ``drill run`` options the service sets itself, with their argparse names: never a drill's options."""
LOOKAHEAD = 1000
"""Fires looked at per drill when listing its next runs: windows and blackouts may skip many."""


class Window(BaseModel):
    """Days and a time of day, in the drill's time zone, in which its fires may run: ``from``
    included, ``to`` excluded (``24:00`` for the end of the day)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: str = Field(alias="from")
    end: str = Field(alias="to")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"expected a time of day as HH:MM (00:00 to 24:00), not {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start >= self.end:
            raise ValueError(f"a window ends after it starts: {self.start}-{self.end} does not (for a window "
                             "across midnight, write two: one to 24:00 and one from 00:00)")
        return self

    def holds(self, local: datetime) -> bool:
        """Whether the local time ``local`` lies in this window."""
        clock = local.strftime("%H:%M")
        return WEEKDAYS[local.weekday()] in self.days and self.start <= clock < self.end

    def __str__(self) -> str:
        days = ",".join(self.days) if len(self.days) < len(WEEKDAYS) else "every day"
        return f"{days} {self.start}-{self.end}"


class ScheduledDrill(BaseModel):
    """One drill of the schedule: ``scenario`` on ``env`` at each fire of ``cron`` in ``timezone``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    """The drill's stable id: the calendar keeps its next fire under it across restarts."""
    scenario: str
    env: str = LAB
    cron: str
    timezone: str = "UTC"
    windows: list[Window] = Field(default_factory=list)
    blackouts: list[date] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list)
    """More ``drill run`` options (``--trials 2``); the service sets the environment, runs dir and --yes."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"a drill's name is lower-case letters, digits and '-' (at most 63), "
                             f"not {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            hint = suggest(value, available_timezones()) or "an IANA name such as Europe/Paris or UTC"
            raise ValueError(f"unknown time zone {value!r} ({hint})") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        cron_trigger(value, "UTC")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def trigger(self) -> CronTrigger:
        """The drill's fires."""
        return cron_trigger(self.cron, self.timezone)

    @property
    def calendar(self) -> str:
        """What decides the drill's fires, as text: when it changes, the stored next fire is not kept."""
        return f"{self.cron} {self.timezone}"

    def skipped(self, fire: datetime) -> str | None:
        """Why the fire at ``fire`` does not run (a blackout date, outside every window); None if it runs."""
        local = fire.astimezone(self.zone)
        if local.date() in self.blackouts:
            return f"{local.date().isoformat()} is a blackout date"
        if self.windows and not any(w.holds(local) for w in self.windows):
            shown = "; ".join(str(w) for w in self.windows)
            return f"{local:%a %H:%M} {self.timezone} is outside its windows ({shown})"
        return None

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fires after ``after`` that run (windows and blackouts applied), among the
        next :data:`LOOKAHEAD` fires."""
        runs: list[datetime] = []
        for fire in self._fires(after):
            if len(runs) == count:
                break
            if self.skipped(fire) is None:
                runs.append(fire)
        return runs

    def lookahead_end(self, after: datetime) -> datetime | None:
        """The last of the next :data:`LOOKAHEAD` fires after ``after`` (None: there is no fire)."""
        return max(self._fires(after), default=None)

    def _fires(self, after: datetime) -> Iterator[datetime]:
        trigger = self.trigger()
        previous: datetime | None = None
        now = after + timedelta(microseconds=1)
        for _ in range(LOOKAHEAD):
            fire = trigger.get_next_fire_time(previous, now)
            if fire is None:
                return
            yield fire
            previous, now = fire, fire + timedelta(microseconds=1)


class Notify(BaseModel):
    """Where each result is posted: generic JSON webhooks and Slack-compatible incoming webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: list[str] = Field(default_factory=list)
    slack: list[str] = Field(default_factory=list)

    @field_validator("webhook", "slack")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"a webhook is an http:// or https:// URL, not {url!r}")
        return value


class Schedule(BaseModel):
    """A whole schedule file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    api_version: Literal["drill/v1"] = Field(alias="apiVersion")
    kind: Literal["Schedule"]
    store: str | None = None
    """The calendar's SQLite file (None: ``schedule.sqlite`` in the runs dir)."""
    misfire_grace: Duration = Field(default=600.0, alias="misfireGrace")
    """How late a fire may still run (missed while the service was down); a later one is reported, not run."""
    notify: Notify = Field(default_factory=Notify)
    drills: list[ScheduledDrill] = Field(min_length=1)

    def store_path(self, runs: Path) -> Path:
        """The calendar's file."""
        return Path(self.store) if self.store else runs / STORE_FILE

    def drill(self, name: str) -> ScheduledDrill:
        return next(d for d in self.drills if d.name == name)


def cron_trigger(expression: str, zone: str) -> CronTrigger:
    """The trigger of a crontab expression: 5 fields (minute hour day month weekday) or 6 (seconds first),
    weekday numbers as crontab counts them (0 or 7 is Sunday). Raises ValueError saying what is wrong."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday) or 6 (seconds "
                         f"first), not {len(fields)}: {expression!r}")
    second = fields[0] if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields[-5:]
    if not day.startswith(("*", "?")) and not weekday.startswith(("*", "?")):
        # crontab fires when either field matches; apscheduler only when both do. Refused rather than
        # run on fewer days than the expression says to crontab's readers.
        raise ValueError(f"{expression!r} restricts both the day of the month ({day}) and the weekday "
                         f"({weekday}): crontab runs on either, this service would run only when both "
                         f"match; write two drills, one with '{day}' and '*' as weekday, one with '*' as "
                         f"day and '{weekday}'")
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_weekdays(weekday), timezone=zone)
    except ValueError as exc:
        raise ValueError(f"not a cron expression: {expression!r}: {exc}") from None


def _weekdays(field: str) -> str:
    """A crontab weekday field as apscheduler's day names (which number Monday 0, unlike crontab)."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"not a weekday step: {part!r}")
        if span == "*":
            low, high = 0, 6
        else:
            first, _, last = span.partition("-")
            low = _weekday(first)
            high = _weekday(last, end=True) if last else (6 if step else low)
            if high < low:
                raise ValueError(f"a weekday range runs forwards (sun=0 to sat=6), not {span!r}")
        days.update(d % 7 for d in range(low, high + 1, step or 1))
    return ",".join(_CRONTAB_DAYS[d] for d in sorted(days))


def _weekday(text: str, *, end: bool = False) -> int:
    """A crontab weekday, 0 (Sunday) to 6; at the ``end`` of a range, 7 for Sunday (``5-7``, ``fri-sun``)."""
    name = text.lower()
    if name in _CRONTAB_DAYS:
        day = _CRONTAB_DAYS.index(name)
    elif text.isdigit() and int(text) <= 7:
        day = int(text) % 7
    else:
        raise ValueError(f"not a weekday: {text!r} (0-7 or sun-sat)")
    return 7 if end and day == 0 else day


def load_schedule(path: str | Path) -> Schedule:
    """Read and check a schedule file: its format, then that each drill's scenario and environment
    exist and its options are ones ``drill run`` accepts. Every problem is reported at its place;
    relative paths are taken from the file's folder."""
    doc = load(path)
    if not isinstance(doc.data, dict):
        raise SourceError(SourceLocation(str(path), 1, 1), "a schedule file is a mapping",
                          hint="start with 'apiVersion: drill/v1' and 'kind: Schedule'")
    try:
        schedule = Schedule.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_errors(doc, exc, vocabulary=field_names(Schedule)) from exc
    base = Path(path).resolve().parent
    errors: list[SourceError] = []
    drills: list[ScheduledDrill] = []
    seen: set[str] = set()
    for i, drill in enumerate(schedule.drills):
        if drill.name in seen:
            errors.append(doc.error(["drills", i, "name"], f"two drills are named {drill.name!r}",
                                    hint="a name is the drill's id in the calendar: give each its own"))
        seen.add(drill.name)
        drills.append(_resolved(doc, i, drill, base, errors))
    if errors:
        raise SourceErrors(errors)
    store = str(base / Path(schedule.store).expanduser()) if schedule.store else None
    return schedule.model_copy(update={"drills": drills, "store": store})


def _resolved(doc: Document, i: int, drill: ScheduledDrill, base: Path,
              errors: list[SourceError]) -> ScheduledDrill:
    """``drill`` with its scenario and environment files absolute; what is wrong with them in ``errors``."""
    # Imported here: the run command's parser and environment lookup are the CLI's, loaded only
    # once a schedule is read.
    from drills.cli.run import run_arguments
    from drills.runner.session import environment_file

    scenario = base / Path(drill.scenario).expanduser()
    if not scenario.is_file():
        errors.append(doc.error(["drills", i, "scenario"], f"no scenario file {scenario}",
                                hint="paths are taken from the schedule file's folder"))
    env = drill.env
    if env != LAB:
        candidate = base / Path(env).expanduser()
        try:
            env = str(environment_file(str(candidate) if _is_path(env) else env).resolve())
        except DrillError as exc:
            errors.append(doc.error(["drills", i, "env"], str(exc),
                                    hint="'lab', a NAME in ./environments/ or scenarios/environments/, or "
                                         "a path from the schedule file's folder"))
    try:
        # With no --env, --runs-dir nor --yes of the service's: whatever the options set of them shows.
        given = run_arguments([str(scenario), *drill.options])
    except DrillError as exc:
        errors.append(doc.error(["drills", i, "options"], f"not options drill run accepts: {exc}",
                                hint="see drill run --help"))
    else:
        unset = run_arguments([str(scenario)])
        owned = [flag for flag, dest in _SERVICE_SETS if getattr(given, dest) != getattr(unset, dest)]
        if owned:
            errors.append(doc.error(["drills", i, "options"], f"the service sets {', '.join(owned)} itself",
                                    hint="use the drill's 'env' key and drill schedule --runs-dir"))
    return drill.model_copy(update={"scenario": str(scenario.resolve()), "env": env})


def _is_path(env: str) -> bool:
    return Path(env).suffix in (".yaml", ".yml") or len(Path(env).parts) > 1


def fire_time_text(fire: datetime, zone: ZoneInfo) -> str:
    """A fire as people read it: in the drill's zone and in UTC (once when they are the same)."""
    local = fire.astimezone(zone)
    shown = f"{local:%Y-%m-%d %a %H:%M:%S %Z}"
    if local.tzname() == "UTC":
        return shown
    return f"{shown} ({fire.astimezone(ZoneInfo('UTC')):%Y-%m-%d %H:%M:%S} UTC)"
