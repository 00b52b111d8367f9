"""Reading scenario, topology and environment files is bounded, whatever the file is: a pipe, a
device, a directory, a huge file or a "billion laughs" is refused at ``file:line:col`` with exit 2,
at once and in little memory, and nothing is started or written."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from drills.cli import main
from drills.errors import SourceError
from drills.yamlsource import MAX_FILE_BYTES, load, loads

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "us-outage.yaml"


def _special(kind: str, folder: Path) -> str:
    if kind == "fifo":
        os.mkfifo(folder / "pipe.yaml")
        return str(folder / "pipe.yaml")
    if kind == "directory":
        (folder / "dir.yaml").mkdir()
        return str(folder / "dir.yaml")
    return "/dev/zero"


KINDS = {"fifo": "a named pipe (FIFO)", "directory": "a directory", "device": "a character device"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_file_that_is_not_a_regular_file_is_refused_before_it_is_read(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _special(kind, tmp_path)
    runs = tmp_path / "runs"
    started = time.monotonic()
    assert main(["validate", path]) == 2
    assert main(["run", str(SCENARIO), "--topology", path, "--runs-dir", str(runs)]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    expected = f"{path}:1:1: cannot read the file: it is {KINDS[kind]}, not a regular file"
    assert err.count(expected) == 2, err
    assert not runs.exists()


def test_a_huge_file_is_refused_at_once_without_reading_it_all(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 2,000,000 steps, 28 MB: refused from its first 256 KiB.
    huge = tmp_path / "huge.yaml"
    with huge.open("w") as f:
        f.write("apiVersion: drill/v1\nname: huge\nsteps:\n")
        f.writelines("  - wait: 1s  # a step\n" for _ in range(2_000_000))
    assert huge.stat().st_size > 28_000_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        code = main(["validate", str(huge)])
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2
    assert f"{huge}:1:1: the file is larger than 256 KiB" in capsys.readouterr().err
    assert elapsed < 2.0
    assert peak < 4 * MAX_FILE_BYTES
    print(f"measured: 28 MB file refused in {elapsed * 1000:.0f} ms, peak {peak / 1e6:.1f} MB")


def test_a_billion_laughs_is_refused_quickly_in_little_memory(tmp_path: Path) -> None:
    # Ten levels of nine aliases each: 3.4 billion values if expanded.
    text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, 10):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SourceError) as refused:
            load(path)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value).startswith(f"{path}:5:10: the file holds more than 10,000 values here")
    assert elapsed < 5.0
    assert peak < 50_000_000
    print(f"measured: billion laughs refused in {elapsed * 1000:.0f} ms, peak {peak / 1e6:.1f} MB")


def test_aliases_within_the_budget_still_work() -> None:
    doc = loads("base: &base {kind: http, every: 1s}\nusers: *base\nmore: {<<: *base, every: 2s}\n")
    assert doc.data["users"] == {"kind": "http", "every": "1s"}
    assert doc.data["more"]["every"] == "2s"


@pytest.mark.parametrize(("text", "path", "where"), [
    ("steps:\n  - wait: 1m\n    5: minutes\n", ["steps", 0, "5"], "3:5"),
    ("a:\n  true: 1\n  null: 2\n  1.5: 3\n", ["a", "True"], "2:3"),
    ("a:\n  true: 1\n  null: 2\n  1.5: 3\n", ["a", "None"], "3:3"),
    ("a:\n  true: 1\n  null: 2\n  1.5: 3\n", ["a", "1.5"], "4:3"),
])
def test_a_key_written_as_a_number_truth_or_null_is_found_where_it_is(
        text: str, path: list[str | int], where: str) -> None:
    doc = loads(text, file="f.yaml")
    assert str(doc.locate(path, key=True)) == f"f.yaml:{where}"
