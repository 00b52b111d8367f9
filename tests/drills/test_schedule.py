"""The schedule file of ``drill schedule``: crontab fields as crontab means them, windows and blackouts
applied to the next runs ``--list`` shows (in the drill's zone and UTC), and mistakes reported at their
place in the file with a suggestion, exit 2, no traceback."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drills.cli import main
from drills.schedule import load_schedule
from drills.scheduler import upcoming

ROOT = Path(__file__).resolve().parents[2]
QUIET = ROOT / "tests" / "integration" / "scenarios" / "quiet.yaml"
CHRISTMAS_EVE = datetime(2026, 12, 24, tzinfo=UTC)  # a Thursday


def _file(tmp_path: Path, drills: str, head: str = "") -> Path:
    path = tmp_path / "schedule.yaml"
    path.write_text(f"apiVersion: drill/v1\nkind: Schedule\n{head}drills:\n{drills}")
    return path


def test_the_example_schedule_lists_its_next_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", str(ROOT / "examples" / "schedule.yaml"), "--list", "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "us-outage-lab: " in out
    assert "windows: mon,tue,wed,thu 09:00-17:00; fri 09:00-12:00" in out
    assert out.count(" UTC)") == 4


def test_next_runs_skip_fires_outside_the_windows_and_on_blackout_dates(tmp_path: Path) -> None:
    schedule = load_schedule(_file(tmp_path, f"""\
  - name: weekday-mornings
    scenario: {QUIET}
    cron: "0 10,15 * * *"
    timezone: Europe/Paris
    windows: [{{days: [mon, tue, wed, thu, fri], from: "09:00", to: "12:00"}}]
    blackouts: [2026-12-25]
"""))
    lines = list(upcoming(schedule, count=2, now=CHRISTMAS_EVE))
    # 15:00 is outside the window, the 25th a blackout date, the 26th and 27th a weekend.
    assert lines[-2:] == ["  2026-12-24 Thu 10:00:00 CET (2026-12-24 09:00:00 UTC)",
                          "  2026-12-28 Mon 10:00:00 CET (2026-12-28 09:00:00 UTC)"]
    drill = schedule.drills[0]
    assert drill.skipped(datetime(2026, 12, 25, 9, tzinfo=UTC)) == "2026-12-25 is a blackout date"
    assert "outside its windows" in (drill.skipped(datetime(2026, 12, 24, 14, tzinfo=UTC)) or "")


@pytest.mark.parametrize(("weekdays", "expected"), [
    ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0", ["Sun"]),
    ("7", ["Sun"]),
    ("5-7", ["Fri", "Sat", "Sun"]),
    ("sat,sun", ["Sat", "Sun"]),
    ("*/3", ["Sun", "Wed", "Sat"]),
])
def test_weekday_numbers_are_crontabs(tmp_path: Path, weekdays: str, expected: list[str]) -> None:
    cron = f"0 3 * * {weekdays}"
    schedule = load_schedule(_file(tmp_path, f"  - {{name: d, scenario: {QUIET}, cron: '{cron}'}}\n"))
    runs = schedule.drills[0].next_runs(datetime(2026, 11, 29, 12, tzinfo=UTC), len(expected))  # a Sunday
    assert [f"{r:%a}" for r in runs] == [*expected[1:], expected[0]] if expected[0] == "Sun" else expected


def test_six_fields_start_with_seconds(tmp_path: Path) -> None:
    schedule = load_schedule(_file(tmp_path, f"  - {{name: d, scenario: {QUIET}, cron: '*/20 * * * * *'}}\n"))
    runs = schedule.drills[0].next_runs(CHRISTMAS_EVE, 3)
    assert [f"{r:%H:%M:%S}" for r in runs] == ["00:00:20", "00:00:40", "00:01:00"]


@pytest.mark.parametrize(("drill", "at", "said"), [
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', timezone: Europe/Pariss}", "Europe/Pariss",
     "unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?)"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * *'}", "'0 3", "a cron expression has 5 fields"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * mon-sn'}", "'0 3", "not a weekday: 'sn'"),
    ("{name: d, scenario: nowhere.yaml, cron: '0 3 * * *'}", "nowhere.yaml", "no scenario file"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', env: nowhere}", "nowhere",
     "no environment named 'nowhere'"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: [--bogus]}", "[--bogus]",
     "not options drill run accepts: unrecognized arguments: --bogus"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: [--runs-dir, x]}", "[--runs-dir",
     "the service sets --runs-dir itself"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: [--en, prod]}", "[--en",
     "not options drill run accepts: unrecognized arguments: --en prod"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: [--runs, /tmp]}", "[--runs",
     "not options drill run accepts: unrecognized arguments: --runs /tmp"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: [--ye]}", "[--ye]",
     "not options drill run accepts: unrecognized arguments: --ye"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: ['--env=prod']}", "['--env",
     "the service sets --env itself"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: [--yes]}", "[--yes]",
     "the service sets --yes itself"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', options: [--help]}", "[--help]",
     "--help prints drill run's help: it is not an option for a drill to run with"),
    ("{name: d, scenario: quiet.yaml, cron: '0 0 1 * 1'}", "'0 0",
     "restricts both the day of the month (1) and the weekday (1)"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', windows: [{from: '12:00', to: '09:00'}]}", "{from",
     "a window ends after it starts"),
    ("{name: d, scenario: quiet.yaml, cron: '0 3 * * *', blackout: [2026-12-25]}", "blackout",
     "unknown key 'blackout' (did you mean 'blackouts'?)"),
])
def test_mistakes_are_shown_at_their_place(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           drill: str, at: str, said: str) -> None:
    shutil.copy(QUIET, tmp_path / "quiet.yaml")
    path = _file(tmp_path, f"  - {drill}\n")
    assert main(["schedule", str(path), "--list"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4:{len('  - ') + drill.index(at) + 1}: " in err, err
    assert said in err
    assert "Traceback" not in err


def test_two_drills_of_one_name_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, f"  - {{name: d, scenario: {QUIET}, cron: '0 3 * * *'}}\n" * 2)
    assert main(["schedule", str(path), "--list"]) == 2
    assert f"{path}:5:12: two drills are named 'd'" in capsys.readouterr().err


def test_a_list_that_finds_no_run_ahead_says_how_far_it_looked(tmp_path: Path) -> None:
    schedule = load_schedule(_file(tmp_path, f"""\
  - name: every-second
    scenario: {QUIET}
    cron: "* * * * * *"
    windows: [{{from: "10:00", to: "11:00"}}]
"""))
    lines = list(upcoming(schedule, count=2, now=CHRISTMAS_EVE))
    assert lines[-1] == "  none in the next 1000 fires (until 2026-12-24 Thu 00:16:40 UTC)"


def test_a_count_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, f"  - {{name: d, scenario: {QUIET}, cron: '0 3 * * *'}}\n")
    with pytest.raises(SystemExit) as exited:
        main(["schedule", str(path), "--list", "--count", "0"])
    assert exited.value.code == 2
    assert "argument --count: at least 1 run, not 0" in capsys.readouterr().err
