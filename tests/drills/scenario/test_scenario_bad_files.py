"""The corpus of broken scenario files: each gives exit 2 and its problem at file:line:col, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drills.cli import main
from drills.plugins import Plugins

BAD = Path(__file__).parent / "bad"

CORPUS = {
    "yaml-syntax.yaml": ("6:9", "YAML syntax error: expected ',' or ']', but got ':'"),
    "tab-indent.yaml": ("4:1", "found character '\\t' that cannot start any token (indent with spaces"),
    "unknown-top-level-key.yaml": ("7:1", "unknown key 'expcet' (did you mean 'expect'?)"),
    "unknown-step-key.yaml": ("7:5", "unknown key 'timout' in a wait step (did you mean 'timeout'?)"),
    "wrong-type.yaml": ("6:12", "every: expected a duration like 500ms, 90s, 5m or 1h, not 'fast'"),
    "unknown-fault.yaml": ("4:12", "unknown fault 'kill-ingres' (did you mean 'kill-ingress'?)"),
    "unknown-probe-kind.yaml": ("4:14", "unknown probe kind 'ping' (installed probe kinds: dns, http, "
                                        "replicas)"),
    "bad-duration.yaml": ("6:11", "expected a duration like 500ms, 90s, 5m or 1h, or a condition like "
                                  "'dns.answer == eu', not '5 minutes'"),
    "bad-percentage.yaml": ("8:24", "expected a percentage between 0% and 100%, not '120%'"),
    "expression-unknown-probe.yaml": ("8:5", "no probe named 'user' in this scenario "
                                             "(did you mean 'users'?)"),
    "unknown-metric.yaml": ("8:9", "probe 'dns' has no metric 'failover_tim' "
                                   "(did you mean 'failover_time'?)"),
    "unknown-signal.yaml": ("6:15", "probe 'dns' has no signal 'answr' (did you mean 'answer'?)"),
    "negative-timeout.yaml": ("7:14", "timeout: expected a duration like 500ms, 90s, 5m or 1h, not '-1s'"),
    "undo-unknown-step.yaml": ("8:11", "no earlier fault step with id 'kill-eu' (did you mean 'kill-us'?)"),
    "duplicate-step-id.yaml": ("9:9", "duplicate step id 'kill' (first used at 4:5)"),
    "cluster-not-in-environment.yaml": ("5:14", "cluster 'asia' is not a region of this environment "
                                                "(its regions: eu, us)"),
    "unknown-env-variable.yaml": ("5:15", "the environment has no variable 'nope' "
                                          "(known: env.fqdn, env.name)"),
    "wrong-api-version.yaml": ("1:13", "apiVersion must be 'drill/v1', not 'drill/v2'"),
    "empty.yaml": ("1:1", "the file is empty"),
    "missing.yaml": ("1:1", "cannot read the file: No such file or directory"),
    "probe-missing-required-key.yaml": ("4:8", "missing required key 'deployment'"),
    "parallel-not-a-list.yaml": ("6:15", "parallel takes a non-empty list of steps"),
    "undo-a-wait-step.yaml": ("8:11", "step 'pause' is a wait step, not a fault (undo names a fault step)"),
    "guard-without-operator.yaml": ("8:5", "expected a comparison like 'dns.failover_time < 3m'"),
    "every-zero.yaml": ("4:27", "every must be longer than 0s, not '0s'"),
    "share-over-100.yaml": ("10:12", "expected a percentage between 0% and 100%, not '150%'"),
    "wait-negative-duration.yaml": ("6:11", "not '-5s'"),
    "step-two-kinds.yaml": ("6:5", "this one has both 'fault' and 'wait' (make them two steps)"),
    "steps-not-a-list.yaml": ("6:3", "steps must be a non-empty list of steps"),
    "not-utf8.yaml": ("2:10", "not a UTF-8 text file (byte 0xe9 at offset 30) (YAML files are UTF-8 text)"),
    "nul-character.yaml": ("2:8", "YAML syntax error: the character U+0000 is not allowed in YAML"),
    # Beyond the limits (issue 8): each refused at validation, before anything could be touched.
    "wait-beyond-100-years.yaml": ("6:11", "a duration is at most 100 years, not '10000"),
    "wait-over-a-day.yaml": ("4:11", "a wait lasts at most 24h, not '25h'"),
    "every-over-a-day.yaml": ("4:27", "every must be at most 24h, not '48h'"),
    "guard-window-over-a-day.yaml": ("8:32", "a guard's window is at most 24h, not '25h'"),
    "number-too-large.yaml": ("8:24", "the number '10000"),
    "name-too-long.yaml": ("2:7", "a scenario name is at most 64 characters, not 5000"),
    "parallel-too-deep.yaml": ("12:37", "parallel steps nest at most 8 deep"),
    "parallel-150-deep.yaml": ("35:67", "values nest more than 64 deep here"),
    "brackets-5000-deep.yaml": ("3:71", "values nest more than 64 deep here"),
    "too-many-steps.yaml": ("1004:5", "a scenario has at most 1,000 steps; this is one more"),
    "billion-laughs.yaml": ("8:10", "the file holds more than 10,000 values here (each alias counts as the "
                                    "values it repeats)"),
    "alias-inside-itself.yaml": ("5:15", "the alias *steps is inside the value it names"),
    "integer-key.yaml": ("5:5", "unknown key '5' in a wait step"),
}


def test_the_corpus_is_complete() -> None:
    on_disk = {p.name for p in BAD.glob("*.yaml")}
    assert on_disk == set(CORPUS) - {"missing.yaml"}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_a_bad_file_is_one_precise_problem_and_exit_2(
        name: str, installed_fakes: Plugins, capsys: pytest.CaptureFixture[str]) -> None:
    where, fragment = CORPUS[name]
    file = BAD / name

    assert main(["validate", str(file)]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{file}:{where}: "), lines[0]
    assert fragment in lines[0]


def test_the_real_command_prints_every_problem_without_a_traceback() -> None:
    # Through a real process with the installed plugins: whatever they are today, a bad file is a
    # message per problem, never a traceback.
    files = sorted(str(p) for p in BAD.glob("*.yaml"))
    result = subprocess.run([sys.executable, "-m", "drills", "validate", *files, str(BAD / "missing.yaml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    reported = {line.split(":", 1)[0] for line in result.stderr.splitlines()}
    assert reported == {*files, str(BAD / "missing.yaml")}
