"""Rendering every installed reporter: one that cannot be loaded or raises is reported, and the others
still write their files (a third party's reporter, registered through a real entry point)."""

from __future__ import annotations

from pathlib import Path

import pytest

import reports
from drills.cli import main


def _install(site: Path, *, module: str) -> None:
    """A distribution in ``site`` registering the reporter ``broken`` as ``module:Broken``."""
    info = site / "broken_reporter-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-reporter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[drill.reporters]\nbroken = {module}:Broken\n")


RAISES = "class Broken:\n    filename = 'broken.txt'\n    def render(self, run, run_dir):\n        {}\n"


@pytest.mark.parametrize(("module", "source", "error"), [
    ("raises_in_render", RAISES.format("return 1 / 0"), "ZeroDivisionError: division by zero"),
    ("raises_on_import", "raise ImportError('a dependency is missing')\n",
     "ImportError: a dependency is missing"),
])
def test_a_reporter_that_fails_is_named_and_the_others_still_write(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str,
        error: str) -> None:
    site = tmp_path / "site"
    _install(site, module=module)
    (site / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(reports.ReportersFailed) as failed:
        reports.render(run_dir)
    assert [p.name for p in failed.value.written] == ["report.html", "junit.xml", "report.md"]
    assert failed.value.failures == [
        f"reporter 'broken' failed: {error} (traceback in {run_dir / reports.LOG_FILE})"]
    assert (run_dir / "report.md").is_file()
    assert "Traceback" in (run_dir / reports.LOG_FILE).read_text()


def test_drill_report_lists_what_was_written_then_names_the_failing_reporter(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    _install(site, module="broken_reporter_cli")
    (site / "broken_reporter_cli.py").write_text(RAISES.format("raise KeyError('x')"))
    monkeypatch.syspath_prepend(str(site))
    assert main(["report", str(run_dir)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(run_dir / "report.html"), str(run_dir / "junit.xml"),
                                str(run_dir / "report.md")]
    assert err.startswith("drill: reporter 'broken' failed: KeyError: 'x'")
    assert "Traceback" not in err
