"""Fuzzing the three file loaders: whatever a scenario, topology or environment file holds, reading it
ends in a valid model or in :class:`~drills.errors.DrillError` (``file:line:col`` problems), never in
another exception, a hang or unbounded memory.

Over 1,000 files: the shipped scenarios, environment, test topologies and the built-in topology
mutated as bytes and lines (YAML's own hazards spliced in: aliases, anchors, tags, ``.nan``,
durations beyond any limit, brackets, tabs, NUL) and as values (a node replaced by another, a key
removed or added), and random YAML documents. Each goes through the real loader of its kind with the
installed plugins; one in ten also through ``drill validate`` in-process; one in ten with its memory
traced. Hypothesis runs derandomized with no example database, so that CI sees the same files every time.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from drills.cli import main
from drills.environment import Environment, load_environment
from drills.errors import DrillError
from drills.lab.topology import DEFAULT, load_topology
from drills.plugins import installed
from drills.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = installed()
SHIPPED_SCENARIO = ROOT / "scenarios" / "us-outage.yaml"

PER_FILE_S = 5.0
"""The longest one file may take to be read and checked (a few ms is usual; the machine may be busy)."""
PEAK_BYTES = 64 * 1024 * 1024
"""The most memory reading one file may take at its peak (traced: Python's allocations)."""


def _dump(data: Any) -> str:
    stream = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(data, stream)
    return stream.getvalue()


def _seeds() -> dict[str, list[str]]:
    scenarios = [*sorted((ROOT / "scenarios").glob("*.yaml")),
                 *(p for p in sorted((ROOT / "tests" / "integration" / "scenarios").glob("*.yaml"))
                   if p.name != "broken.yaml")]
    return {
        "scenario": [p.read_text() for p in scenarios],
        "environment": [p.read_text() for p in sorted((ROOT / "scenarios" / "environments").glob("*.yaml"))],
        "topology": [_dump(DEFAULT.model_dump(by_alias=True, mode="json")),
                     *(p.read_text() for p in sorted((ROOT / "tests" / "integration" / "topologies")
                                                     .glob("*.yaml")))],
    }


SEEDS = _seeds()
SEED_FILES = [(kind, text) for kind, texts in sorted(SEEDS.items()) for text in texts]

_LONG = "1" + "0" * 400
HAZARDS = [
    ".nan", ".inf", "-.inf", _LONG + "h", _LONG + "s", _LONG, "-1s", "0s", "25h", "1e999", "0x1F", "0o17",
    "null", "~", "true", "no", "[]", "{}", "[[[[[[", "]]", "}", "&a", "*a", "&a [1, 2]", "*undefined",
    "<<: *a", "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]", "!!python/object:os.system",
    "!custom x", "!!int x", "!!float", "2020-01-01", "2020-13-45", "2020-01-01T00:00:00Z", "'\\x00'",
    '"\\uFFFF"', "? [a, b]", "| \n  text", "---", "...", "%YAML 1.1", "%TAG ! tag:x,2000:", "é", "\t",
    "\x00", "\x85", "\ufeff", "a" * 3000, "5: x", "true: x", "null: x", "[a, b]: c", "- - - - - x",
    "{a: 1, a: 2}", "#", ":", "- ", "{{ env.name }}", "{{ env.", "dns.answer == ",
    "users.error_rate > 80% for " + _LONG + "h", "parallel:", "undo: step-1", "wait: " + _LONG + "h",
    "timeScale: .nan", "kind: Environment",
]
"""Fragments that have broken YAML readers or drill's checks: spliced into files by the mutations."""


def _at(data: bytes, position: int) -> int:
    return position % (len(data) + 1)


@st.composite
def _mutated_text(draw: st.DrawFn) -> tuple[str, bytes]:
    """A shipped file with one to five byte or line mutations."""
    kind, text = draw(st.sampled_from(SEED_FILES))
    data = text.encode()
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["hazard", "bytes", "delete", "line-drop", "line-dup", "line-swap",
                                   "indent", "value", "truncate"]))
        where = _at(data, draw(st.integers(0, 1 << 16)))
        if op == "hazard":
            data = data[:where] + draw(st.sampled_from(HAZARDS)).encode() + data[where:]
        elif op == "bytes":
            data = data[:where] + draw(st.binary(min_size=1, max_size=8)) + data[where:]
        elif op == "delete":
            data = data[:where] + data[where + draw(st.integers(1, 64)):]
        elif op == "truncate":
            data = data[:where]
        else:
            lines = data.split(b"\n")
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            j = draw(st.integers(0, max(0, len(lines) - 1)))
            if op == "line-drop":
                del lines[i]
            elif op == "line-dup":
                lines.insert(i, lines[i])
            elif op == "line-swap":
                lines[i], lines[j] = lines[j], lines[i]
            elif op == "indent":
                lines[i] = b" " * draw(st.sampled_from([1, 2, 4])) + lines[i]
            else:  # a value replaced by a hazard
                key, colon, _ = lines[i].partition(b":")
                if colon:
                    lines[i] = key + b": " + draw(st.sampled_from(HAZARDS)).encode()
            data = b"\n".join(lines)
    return kind, data


SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
           | st.text(max_size=20) | st.sampled_from(HAZARDS))


def _values(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(keys, children, max_size=4), max_leaves=20)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _paths(value, (*prefix, i))


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for texts in SEEDS.values():
        for text in texts:
            for path in _paths(YAML(typ="safe", pure=True).load(text)):
                words.update(p for p in path if isinstance(p, str))
    return sorted(words)


VOCABULARY = _vocabulary()
KEYS = st.sampled_from(VOCABULARY) | st.text(max_size=12) | st.integers(-5, 5) | st.booleans()


@st.composite
def _mutated_values(draw: st.DrawFn) -> tuple[str, bytes]:
    """A shipped file parsed, one to four of its nodes replaced, removed or given a new key, dumped again."""
    kind, text = draw(st.sampled_from(SEED_FILES))
    data = YAML(typ="safe", pure=True).load(text)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(data))))
        if not path:
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["replace", "remove", "add"]))
        if op == "replace":
            parent[path[-1]] = draw(_values(KEYS))
        elif op == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(_values(KEYS))
        else:
            parent.insert(path[-1], draw(_values(KEYS)))
    return kind, _dump(data).encode()


@st.composite
def _generated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A random YAML document, its top level as each kind of file starts."""
    kind = draw(st.sampled_from(sorted(SEEDS)))
    top: dict[Any, Any] = {"apiVersion": "drill/v1", "name": draw(st.text(max_size=10) | st.just("x"))}
    if kind == "environment":
        top["kind"] = "Environment"
    top.update(draw(st.dictionaries(st.sampled_from(VOCABULARY), _values(KEYS), max_size=6)))
    document = top if draw(st.booleans()) else draw(_values(KEYS))
    return kind, _dump(document).encode()


LOADERS: dict[str, Callable[[Path], object]] = {
    "scenario": lambda path: load_scenario(path, regions={"us", "eu"}, plugins=PLUGINS,
                                           variables={"name": "lab", "fqdn": "shop.trafficmanager.net"}),
    "topology": load_topology,
    "environment": load_environment,
}


class _Reader:
    """Reads each generated file as drill does and checks the bounds; counts what it read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = 0
        self.refused = 0
        self.slowest = 0.0
        self.peak = 0

    def __call__(self, kind: str, data: bytes) -> None:
        self.files += 1
        path = self.folder / f"{kind}.yaml"
        path.write_bytes(data)
        traced = self.files % 10 == 0
        if traced:
            tracemalloc.start()
        started = time.monotonic()
        try:
            result = LOADERS[kind](path)
        except DrillError:
            self.refused += 1
            result = None
        finally:
            elapsed = time.monotonic() - started
            if traced:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                self.peak = max(self.peak, peak)
                assert peak < PEAK_BYTES, f"{kind} file took {peak / 1e6:.0f} MB"
        self.slowest = max(self.slowest, elapsed)
        assert elapsed < PER_FILE_S, f"{kind} file took {elapsed:.1f} s"
        if self.files % 10 == 5:
            self._validate(kind, path, valid=result is not None)

    def _validate(self, kind: str, path: Path, *, valid: bool) -> None:
        """``drill validate`` as a user runs it: exit 0 or 2, any other exception fails the test."""
        if kind == "scenario":
            argv = ["validate", str(path)]
        elif kind == "environment":
            argv = ["validate", str(SHIPPED_SCENARIO), "--env", str(path)]
        else:
            return  # no command reads a topology without starting a lab
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code in (0, 2), err.getvalue()
        if kind == "scenario":
            assert (code == 0) == valid, err.getvalue()


@pytest.fixture
def reader() -> Iterator[_Reader]:
    with tempfile.TemporaryDirectory(prefix="drill-fuzz-") as folder:
        yield _Reader(Path(folder))


FUZZ = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _report(reader: _Reader, what: str, examples: int) -> None:
    assert reader.files >= examples
    print(f"measured: {reader.files} {what}, {reader.refused} refused, slowest "
          f"{reader.slowest * 1000:.0f} ms, traced peak {reader.peak / 1e6:.1f} MB")


def test_mutated_files_are_read_or_refused_cleanly(reader: _Reader) -> None:
    @FUZZ
    @given(_mutated_text())
    def read(case: tuple[str, bytes]) -> None:
        reader(*case)

    read()
    _report(reader, "byte- and line-mutated files", 400)


def test_files_with_mutated_values_are_read_or_refused_cleanly(reader: _Reader) -> None:
    @settings(FUZZ, max_examples=350)
    @given(_mutated_values())
    def read(case: tuple[str, bytes]) -> None:
        reader(*case)

    read()
    _report(reader, "value-mutated files", 350)


def test_random_documents_are_read_or_refused_cleanly(reader: _Reader) -> None:
    @settings(FUZZ, max_examples=250)
    @given(_generated())
    def read(case: tuple[str, bytes]) -> None:
        reader(*case)

    read()
    _report(reader, "random documents", 250)


def test_the_seeds_are_valid_files() -> None:
    # Mutations start from files the loaders accept, so that they reach every check, not only the first.
    for kind, text in SEED_FILES:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "seed.yaml"
            path.write_text(text)
            result = LOADERS[kind](path)
            assert result is not None
            if kind == "environment":
                assert isinstance(result, Environment)
