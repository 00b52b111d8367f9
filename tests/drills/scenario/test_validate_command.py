"""``drill validate``: ok lines for good files, every problem of every bad one, regions and variables
from the lab or from an environment file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from drills.cli import main
from drills.plugins import Plugins

Write = Callable[..., Path]

GOOD = """
    apiVersion: drill/v1
    name: good
    probes:
      dns: {kind: dns}
      users: {kind: http}
    steps:
      - fault: kill-ingress
        cluster: us
      - wait: dns.answer == eu
      - wait: 5m
    expect:
      - dns.failover_time < 3m
    """

ENVIRONMENT = """
    apiVersion: drill/v1
    kind: Environment
    name: staging
    regions:
      westus:
        context: aks-west
        ingress: {namespace: ingress-nginx, deployment: ingress-nginx-controller}
        endpoint: shop-west
        target: shop-west.example.test
      northeurope:
        context: aks-north
        ingress: {namespace: ingress-nginx, deployment: ingress-nginx-controller}
        endpoint: shop-north
        target: shop-north.example.test
    trafficManager:
      fqdn: shop-staging.trafficmanager.net
      nameservers: ["127.0.0.1:5353"]
    vars:
      primary: westus
    """

ON_ENVIRONMENT = """
    apiVersion: drill/v1
    name: on-staging
    description: "{{ env.name }} {{ env.fqdn }}"
    steps:
      - fault: kill-ingress
        cluster: "{{ env.primary }}"
    """


def test_good_files_are_ok_with_their_counts(write: Write, installed_fakes: Plugins,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    first, second = write(GOOD), write("apiVersion: drill/v1\nname: tiny\nsteps: [{wait: 1s}]\n")
    assert main(["validate", str(first), str(second)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{first}: ok (2 probes, 3 steps)", f"{second}: ok (0 probes, 1 step)"]
    assert err == ""


def test_every_problem_of_every_bad_file_is_printed_and_good_files_still_checked(
        write: Write, installed_fakes: Plugins, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write("apiVersion: drill/v1\nname: bad\nsteps:\n  - wait: 5 min\n  - fault: kil-ingress\n")
    also_bad = write("")
    good = write(GOOD)
    assert main(["validate", str(bad), str(good), str(also_bad)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{good}: ok (2 probes, 3 steps)\n"
    assert err.splitlines() == [
        f"{bad}:4:11: expected a duration like 500ms, 90s, 5m or 1h, or a condition like 'dns.answer == eu', "
        "not '5 min'",
        f"{bad}:5:12: unknown fault 'kil-ingress' (did you mean 'kill-ingress'?)",
        f"{also_bad}:1:1: the file is empty (a scenario starts with 'apiVersion: drill/v1')",
    ]


def test_without_env_the_lab_regions_and_variables_apply(write: Write, installed_fakes: Plugins,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write(ON_ENVIRONMENT)
    assert main(["validate", str(scenario)]) == 2
    assert capsys.readouterr().err == (
        f"{scenario}:6:15: the environment has no variable 'primary' (known: env.fqdn, env.name)\n")


def test_an_environment_file_gives_its_regions_name_fqdn_and_vars(
        write: Write, installed_fakes: Plugins, capsys: pytest.CaptureFixture[str]) -> None:
    env = write(ENVIRONMENT, "staging.yaml")
    assert main(["validate", str(write(ON_ENVIRONMENT)), "--env", str(env)]) == 0
    on_lab_regions = write(GOOD)
    assert main(["validate", str(on_lab_regions), "--env", str(env)]) == 2
    assert capsys.readouterr().err == (
        f"{on_lab_regions}:8:14: cluster 'us' is not a region of this environment "
        "(its regions: northeurope, westus)\n")


def test_an_environment_name_is_looked_up_in_the_environments_folders(
        write: Write, installed_fakes: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "scenarios" / "environments"
    folder.mkdir(parents=True)
    (folder / "staging.yaml").write_text(Path(write(ENVIRONMENT)).read_text())
    scenario = write(ON_ENVIRONMENT)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(scenario), "--env", "staging"]) == 0
    assert main(["validate", str(scenario), "--env", "prod"]) == 2
    assert capsys.readouterr().err == ("drill: no environment named 'prod' (looked for "
                                       "environments/prod.yaml, "
                                       "scenarios/environments/prod.yaml; or give a path, or 'lab')\n")


def test_a_bad_environment_file_is_reported_at_its_place(
        write: Write, installed_fakes: Plugins, capsys: pytest.CaptureFixture[str]) -> None:
    env = write(ENVIRONMENT.replace("kind: Environment", "kind: Environmnet"), "broken-env.yaml")
    assert main(["validate", str(write(GOOD)), "--env", str(env)]) == 2
    assert f"{env}:2:7: kind must be 'Environment', not 'Environmnet'" in capsys.readouterr().err
