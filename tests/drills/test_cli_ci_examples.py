"""The CI definitions drill ships (``examples/ci/``) and runs for itself (``.github/workflows/``): each
parses as YAML, every ``drill`` command line in them is one drill's own parser accepts, and every file of
this repository they name exists."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from drills.cli import _COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = [ROOT / "examples/ci/github-actions.yml", ROOT / "examples/ci/azure-pipelines.yml",
               ROOT / ".github/workflows/drill.yml"]
_SCRIPT_KEYS = ("run", "script", "bash", "inlineScript")
"""Keys whose value is shell: GitHub Actions' ``run``, Azure Pipelines' ``script``/``bash`` and
AzureCLI@2's ``inlineScript``."""
_REPO_PATH = re.compile(r"(?<![\w/.$-])(?:scenarios|scripts|deploy|examples|docs)/[\w./-]*[\w/]")
_SHELL_ENDS = {"|", "||", "&&", ";", ">", ">>", "2>&1"}


def _parser() -> argparse.ArgumentParser:
    """drill's command line parser, built as ``drills.cli.main`` builds it."""
    parser = argparse.ArgumentParser(prog="drill", exit_on_error=False)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in _COMMANDS:
        importlib.import_module(module).register(commands)
    return parser


def _scripts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _SCRIPT_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _scripts(item)


def _drill_commands(script: str) -> Iterator[list[str]]:
    """The arguments of each ``drill`` (or ``.../bin/drill``) command in a shell script."""
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        for i, word in enumerate(words):
            if word == "drill" or word.endswith("/bin/drill"):
                args = words[i + 1:]
                end = next((j for j, w in enumerate(args) if w in _SHELL_ENDS), len(args))
                yield args[:end]


@pytest.fixture(scope="module", params=DEFINITIONS, ids=lambda p: str(p.relative_to(ROOT)))
def definition(request: pytest.FixtureRequest) -> tuple[Path, Any]:
    path: Path = request.param
    return path, YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def test_every_drill_command_is_one_drill_accepts(definition: tuple[Path, Any]) -> None:
    path, document = definition
    commands = [args for script in _scripts(document) for args in _drill_commands(script)]
    assert any(args[:1] == ["run"] for args in commands), f"{path}: no drill run"
    parser = _parser()
    for args in commands:
        try:
            parsed = parser.parse_args(args)
        except (argparse.ArgumentError, SystemExit) as exc:
            pytest.fail(f"{path}: drill {shlex.join(args)}: {exc}")
        if parsed.command == "run":
            assert (ROOT / parsed.file).is_file(), f"{path}: drill run {parsed.file}: no such scenario"
            assert parsed.junit is not None, f"{path}: drill run without --junit: CI gets no test report"


def test_every_file_of_the_repository_named_exists(definition: tuple[Path, Any]) -> None:
    path, _ = definition
    named = set(_REPO_PATH.findall(path.read_text(encoding="utf-8")))
    assert named, f"{path} names no file of the repository"
    assert not {p for p in named if not (ROOT / p).exists()}, f"{path} names files that do not exist"


def test_run_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--help"])
    shown = capsys.readouterr().out
    codes = shown.split("exit codes:", 1)[1]
    for line in ("0  passed", "1  failed", "2  could not run, aborted", "3  rollback incomplete"):
        assert f"\n  {line}" in codes
    assert "$GITHUB_STEP_SUMMARY" in codes
