"""Loading scenario files: the model a good file gives, and every problem of a bad one at its place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from drills.errors import SourceErrors
from drills.plugins import Plugins
from drills.scenario import (
    Comparison,
    FaultStep,
    Guard,
    ParallelStep,
    UndoStep,
    WaitStep,
    load_scenario,
)

Write = Callable[..., Path]

REGIONS = ("us", "eu")
VARIABLES = {"name": "lab", "fqdn": "shop.trafficmanager.net", "primary": "us"}

US_OUTAGE = """
    apiVersion: drill/v1
    name: us-outage
    description: The US ingress dies; users must be served from Europe within 3 minutes.
    probes:
      dns:    {kind: dns, every: 1s}
      users:  {kind: http, path: /, every: 500ms}
      web_eu: {kind: replicas, cluster: eu, namespace: shop, deployment: web}
    steps:
      - fault: kill-ingress
        cluster: "{{ env.primary }}"
        id: kill
      - wait: dns.answer == eu
        timeout: 10m
      - wait: 5m
      - undo: kill
    expect:
      - dns.failover_time < 3m
      - users.downtime < 4m
      - web_eu.min_ready >= 3
      - dns.failover_time.eu <= 200s
    guards:
      - users.error_rate > 80% for 8m
    """


def _errors(path: Path, plugins: Plugins, **kw: object) -> list[str]:
    with pytest.raises(SourceErrors) as info:
        load_scenario(path, regions=kw.get("regions", REGIONS), variables=kw.get("variables", VARIABLES),
                      plugins=plugins)
    return [str(e).replace(f"{path}:", "") for e in info.value.errors]


def test_the_design_example_loads_into_the_model(write: Write, fake_plugins: Plugins) -> None:
    path = write(US_OUTAGE)
    scenario = load_scenario(path, regions=REGIONS, variables=VARIABLES, plugins=fake_plugins)

    assert scenario.name == "us-outage"
    assert scenario.description.startswith("The US ingress dies")
    assert scenario.file == str(path)
    assert scenario.rollback == "auto"
    assert {n: (p.kind, p.every) for n, p in scenario.probes.items()} == {
        "dns": ("dns", 1.0), "users": ("http", 0.5), "web_eu": ("replicas", 1.0)}
    assert scenario.probes["web_eu"].params.model_dump() == {"cluster": "eu", "namespace": "shop",
                                                             "deployment": "web"}
    kill, until_eu, settle, undo = scenario.steps
    assert isinstance(kill, FaultStep)
    assert (kill.id, kill.fault, kill.region) == ("kill", "kill-ingress", "us")
    assert until_eu == WaitStep(id="step-2", duration=None, timeout=600.0, condition=Comparison(
        subject="dns.answer", probe="dns", name="answer", op="==", value="eu", unit=None,
        text="dns.answer == eu"))
    assert settle == WaitStep(id="step-3", duration=300.0, condition=None, timeout=300.0)
    assert undo == UndoStep(id="step-4", target="kill")
    assert [(c.subject, c.op, c.value, c.unit) for c in scenario.expect] == [
        ("dns.failover_time", "<", 180.0, "s"), ("users.downtime", "<", 240.0, "s"),
        ("web_eu.min_ready", ">=", 3.0, None), ("dns.failover_time.eu", "<=", 200.0, "s")]
    assert scenario.expect[3].name == "failover_time.eu"
    assert scenario.guards == (Guard(condition=Comparison(
        subject="users.error_rate", probe="users", name="error_rate", op=">", value=80.0, unit="%",
        text="users.error_rate > 80%"), for_seconds=480.0, text="users.error_rate > 80% for 8m"),)


def test_default_ids_number_steps_and_nested_steps_and_fault_steps_go_depth_first(
        write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: both
        rollback: manual
        steps:
          - fault: cordon-zone
            cluster: us
            zone: zone-1
          - wait: 1m
          - parallel:
              - {fault: kill-ingress, cluster: us}
              - {fault: delete-pods, cluster: eu, namespace: shop, selector: app=web, share: 50%}
              - wait: 90s
          - undo: step-3.2
          - undo: step-1
        """)
    scenario = load_scenario(path, regions=REGIONS, variables=VARIABLES, plugins=fake_plugins)

    assert scenario.rollback == "manual"
    assert [s.id for s in scenario.steps] == ["step-1", "step-2", "step-3", "step-4", "step-5"]
    parallel = scenario.steps[2]
    assert isinstance(parallel, ParallelStep)
    assert [s.id for s in parallel.steps] == ["step-3.1", "step-3.2", "step-3.3"]
    assert [(f.id, f.fault, f.region) for f in scenario.fault_steps()] == [
        ("step-1", "cordon-zone", "us"), ("step-3.1", "kill-ingress", "us"),
        ("step-3.2", "delete-pods", "eu")]
    assert scenario.fault_steps()[2].params.share == 50.0  # type: ignore[attr-defined]


def test_every_problem_is_reported_in_one_pass_in_file_order(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v2
        name: many
        probes:
          dns: {kind: dns, every: fast}
        steps:
          - fault: kill-ingres
            cluster: us
          - wait: 5 minutes
        expect:
          - dns.failover_tme < 3m
        """)
    assert _errors(path, fake_plugins) == [
        "1:13: apiVersion must be 'drill/v1', not 'drill/v2' (this drill reads version 1 of the scenario "
        "format)",
        "4:27: every: expected a duration like 500ms, 90s, 5m or 1h, not 'fast'",
        "6:12: unknown fault 'kill-ingres' (did you mean 'kill-ingress'?)",
        "8:11: expected a duration like 500ms, 90s, 5m or 1h, or a condition like 'dns.answer == eu', "
        "not '5 minutes'",
        "10:9: probe 'dns' has no metric 'failover_tme' (did you mean 'failover_time'?)",
    ]


@pytest.mark.parametrize(("line", "column"), [
    ("  - web_eu.min_redy >= 3", 12),
    ('  - "web_eu.min_redy >= 3"', 13),
    ("  - 'web_eu.min_redy >= 3'", 13),
])
def test_an_expression_error_points_at_the_column_of_the_wrong_part(
        write: Write, fake_plugins: Plugins, line: str, column: int) -> None:
    path = write("apiVersion: drill/v1\nname: x\nprobes:\n  web_eu: {kind: replicas, cluster: eu, "
                 "namespace: shop, deployment: web}\nsteps: [{wait: 1s}]\nexpect:\n" + line + "\n")
    assert _errors(path, fake_plugins) == [
        f"7:{column}: probe 'web_eu' has no metric 'min_redy' (did you mean 'min_ready'?)"]


def test_conditions_and_guards_name_signals_and_expectations_metrics(
        write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        probes:
          dns: {kind: dns}
          web: {kind: replicas, cluster: eu, namespace: shop, deployment: web}
        steps:
          - {wait: dns.failover_time < 1m, timeout: 5m}
          - wait: web.ready.zone-2 >= 1
          - wait: web.ready >= 1
          - wait: webb.ready >= 1
        expect:
          - dns.answer == eu
          - web.ready_by_zone.zone-1 >= 1
        guards:
          - web.redy.zone-1 < 1 for 2m
          - dns.answer != eu for 2m
        """)
    assert _errors(path, fake_plugins) == [
        "7:16: probe 'dns' has no signal 'failover_time' (its signals: answer, steady)",
        "10:11: no probe named 'webb' in this scenario (did you mean 'web'?)",
        "12:9: probe 'dns' has no metric 'answer' (its metrics: failover_time, failover_time.<key>, "
        "client_failover_time, failback_time, flaps)",
        "13:9: probe 'web' has no metric 'ready_by_zone.zone-1' (did you mean 'ready_by_zone'?)",
        "15:9: probe 'web' has no signal 'redy.zone-1' (did you mean 'ready.zone-1'?)",
    ]


def test_values_must_fit_the_operator_and_the_unit_syntax(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        probes: {users: {kind: http}}
        steps: [{wait: 1s}]
        expect:
          - users.availability > 180%
          - users.downtime < 3 minutes
          - users.downtime < eu
          - users.downtime = 3m
          - users.downtime < 3m for 1m
          - users < 3m
        guards:
          - users.error_rate > 80% for ever
        """)
    assert _errors(path, fake_plugins) == [
        "6:26: expected a percentage between 0% and 100%, not '180%'",
        "7:22: expected a duration (3m), a percentage (80%), a number or a name after '<', not '3 minutes'",
        "8:22: '<' compares numbers; a name like 'eu' takes == or !=",
        "9:20: '=' is not a comparison (use '==' to compare)",
        "10:25: 'for <duration>' applies only to guards",
        "11:5: expected <probe>.<name> before '<', not 'users' (for example 'users.<name> < ...')",
        "13:32: expected a duration like 500ms, 90s, 5m or 1h, not 'ever'",
    ]


def test_env_references_are_substituted_and_unknown_ones_reported_where_written(
        write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        description: "drill of {{ env.name }} at {{env.fqdn}}"
        steps:
          - {fault: kill-ingress, cluster: "{{ env.primary }}"}
          - {fault: kill-ingress, cluster: "x{{ env.nope }}"}
          - {fault: kill-ingress, cluster: "{{ secrets.token }}"}
        """)
    assert _errors(path, fake_plugins) == [
        "6:38: the environment has no variable 'nope' (known: env.fqdn, env.name, env.primary)",
        "7:37: unknown reference '{{ secrets.token }}' (references are {{ env.NAME }}; known: env.fqdn, "
        "env.name, env.primary)",
    ]
    good = write("""
        apiVersion: drill/v1
        name: x
        description: "drill of {{ env.name }} at {{env.fqdn}}"
        steps:
          - {fault: kill-ingress, cluster: "{{ env.primary }}"}
        """)
    scenario = load_scenario(good, regions=REGIONS, variables=VARIABLES, plugins=fake_plugins)
    assert scenario.description == "drill of lab at shop.trafficmanager.net"
    assert scenario.fault_steps()[0].region == "us"


def test_an_expression_error_after_a_substitution_still_points_into_the_file(
        write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        probes: {dns: {kind: dns}}
        steps:
          - wait: dns.answer == {{ env.primary }}
          - wait: dns.answer < {{ env.primary }}
        """)
    assert _errors(path, fake_plugins) == ["6:24: '<' compares numbers; a name like 'us' takes == or !="]


def test_clusters_must_be_regions_of_the_environment_when_it_is_known(
        write: Write, fake_plugins: Plugins) -> None:
    text = """
        apiVersion: drill/v1
        name: x
        probes:
          web: {kind: replicas, cluster: ue, namespace: shop, deployment: web}
        steps:
          - fault: kill-ingress
            cluster: asia
        """
    assert _errors(write(text), fake_plugins) == [
        "4:34: cluster 'ue' is not a region of this environment (its regions: eu, us)",
        "7:14: cluster 'asia' is not a region of this environment (its regions: eu, us)",
    ]
    scenario = load_scenario(write(text), regions=None, variables=VARIABLES, plugins=fake_plugins)
    assert scenario.fault_steps()[0].region == "asia"


def test_undo_names_an_earlier_fault_step_once(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        steps:
          - {fault: kill-ingress, cluster: us, id: kill}
          - {wait: 1m, id: pause}
          - undo: pause
          - undo: later
          - parallel:
              - {fault: kill-ingress, cluster: eu, id: kill-eu}
              - undo: kill-eu
              - undo: kill
          - undo: kill
          - undo: kil-eu
          - {fault: cordon-zone, cluster: us, zone: z1, id: later}
          - {wait: 1s, id: kill}
        """)
    assert _errors(path, fake_plugins) == [
        "6:11: step 'pause' is a wait step, not a fault (undo names a fault step)",
        "7:11: no earlier fault step with id 'later' (earlier fault steps: kill)",
        "10:15: fault step 'kill-eu' runs alongside this undo, not before it (undo it in a later step)",
        "12:11: fault step 'kill' is already undone by step 'step-5.3' (a fault is undone once)",
        "13:11: no earlier fault step with id 'kil-eu' (did you mean 'kill-eu'?)",
        "15:20: duplicate step id 'kill' (first used at 4:5) (step ids are unique in a scenario)",
    ]


def test_a_default_id_taken_by_an_explicit_one_is_reported(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        steps:
          - {wait: 1s, id: step-2}
          - {wait: 2s}
        """)
    assert _errors(path, fake_plugins) == [
        "5:5: this step's default id 'step-2' is already used at 4:5 (give one of them another 'id:')"]


def test_steps_are_exactly_one_kind_with_only_their_own_keys(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        probes: {dns: {kind: dns}}
        steps:
          - {fault: kill-ingress, cluster: us, clustr: eu}
          - {wait: 1m, timeout: 2m}
          - {wait: dns.answer == eu, tiemout: 2m}
          - {wait: dns.answer == eu, timeout: -1s}
          - {wait: dns.answer == eu, timeout: 0s}
          - {fault: kill-ingress, wait: 1m}
          - {sleep: 1m}
          - {id: lonely}
          - {faults: kill-ingress}
          - wait 5m
          - {parallel: []}
        """)
    assert _errors(path, fake_plugins) == [
        "5:40: unknown key 'clustr' (did you mean 'cluster'?)",
        "6:16: 'timeout' applies only to a condition wait (a duration wait always lasts its duration)",
        "7:30: unknown key 'tiemout' in a wait step (did you mean 'timeout'?)",
        "8:39: timeout: expected a duration like 500ms, 90s, 5m or 1h, not '-1s'",
        "9:39: timeout must be longer than 0s, not '0s'",
        "10:27: a step is exactly one of 'fault', 'wait', 'parallel' or 'undo'; this one has both 'fault' "
        "and 'wait' (make them two steps)",
        "11:6: unknown step key 'sleep' (a step is one of 'fault', 'wait', 'parallel' or 'undo')",
        "12:5: a step needs one of 'fault', 'wait', 'parallel' or 'undo'",
        "13:6: unknown step key 'faults' (did you mean 'fault'?)",
        "14:5: a step is a mapping with one of 'fault', 'wait', 'parallel' or 'undo', not the text 'wait 5m' "
        "(for example '- wait: wait 5m')",
        "15:16: parallel takes a non-empty list of steps",
    ]


def test_probes_are_checked_against_their_kind(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        probes:
          users: {kind: http, pth: /}
          Users2: {kind: http}
          web: {kind: replica, cluster: eu}
          tm: {kind: traffic-manager}
          nothing: {every: 1s}
          web_us: {kind: replicas, cluster: us, namespace: shop}
          slow: {kind: dns, every: 0s}
        steps: [{wait: 1s}]
        """)
    assert _errors(path, fake_plugins) == [
        "4:23: unknown key 'pth' (did you mean 'path'?)",
        "5:3: probe name 'Users2' must be lower-case letters, digits and '_', starting with a letter "
        "(it is used in expressions as name.metric)",
        "6:15: unknown probe kind 'replica' (did you mean 'replicas'?)",
        "7:14: probe kind 'traffic-manager' is installed but cannot be used: cannot load "
        "probes.tm:TrafficManagerProbe: ModuleNotFoundError: No module named 'probes.tm'",
        "8:12: missing required key 'kind' (installed probe kinds: dns, http, replicas)",
        "9:11: missing required key 'deployment'",
        "10:28: every must be longer than 0s, not '0s'",
    ]


def test_top_level_keys_are_known_and_required_ones_present(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        descripton: misspelt
        rollback: manaul
        expect: dns.failover_time < 3m
        """)
    assert _errors(path, fake_plugins) == [
        "1:1: unknown key 'descripton' (did you mean 'description'?)",
        "1:1: missing required key 'apiVersion' (add 'apiVersion: drill/v1')",
        "1:1: missing required key 'name' (for example 'name: us-outage')",
        "1:1: missing required key 'steps' (for example 'steps: [{fault: kill-ingress, cluster: us}, "
        "{wait: 5m}]')",
        "2:11: rollback must be 'auto' or 'manual', not 'manaul' (did you mean 'manual'?)",
        "3:9: expect must be a list of expressions, not the text 'dns.failover_time < 3m' "
        "(for example '- dns.failover_time < 3m')",
    ]


def test_a_missing_empty_or_non_mapping_file_is_one_error(tmp_path: Path, write: Write,
                                                          fake_plugins: Plugins) -> None:
    assert _errors(write(""), fake_plugins) == [
        "1:1: the file is empty (a scenario starts with 'apiVersion: drill/v1')"]
    assert _errors(write("- a\n- b\n"), fake_plugins) == [
        "1:1: a scenario file is a mapping of apiVersion, name, probes, steps, expect, ..."]
    missing = tmp_path / "nope.yaml"
    assert _errors(missing, fake_plugins) == ["1:1: cannot read the file: No such file or directory"]


def test_without_variables_every_reference_is_an_error(write: Write, fake_plugins: Plugins) -> None:
    path = write('apiVersion: drill/v1\nname: x\ndescription: "{{ env.name }}"\nsteps: [{wait: 1s}]\n')
    assert _errors(path, fake_plugins, variables={}) == [
        "3:15: the environment has no variable 'name' (no variables are defined)"]


def test_a_condition_wait_without_timeout_gets_the_default(write: Write, fake_plugins: Plugins) -> None:
    path = write("""
        apiVersion: drill/v1
        name: x
        probes: {dns: {kind: dns}}
        steps:
          - wait: dns.answer == eu
          - {wait: dns.answer == us, timeout: 90s}
        """)
    scenario = load_scenario(path, regions=REGIONS, variables=VARIABLES, plugins=fake_plugins)
    assert [(s.timeout, s.duration) for s in scenario.steps if isinstance(s, WaitStep)] == [
        (600.0, None), (90.0, None)]


def test_inconclusive_is_fail_by_default_pass_when_said_and_checked_at_its_place(
        write: Write, fake_plugins: Plugins) -> None:
    assert load_scenario(write(US_OUTAGE), regions=REGIONS, variables=VARIABLES,
                         plugins=fake_plugins).inconclusive == "fail"
    lenient = write(US_OUTAGE + "inconclusive: pass\n")
    assert load_scenario(lenient, regions=REGIONS, variables=VARIABLES,
                         plugins=fake_plugins).inconclusive == "pass"
    bad = write(US_OUTAGE + "inconclusive: passs\n")
    assert _errors(bad, fake_plugins) == [
        "23:15: inconclusive must be 'fail' or 'pass', not 'passs' (did you mean 'pass'?)"]
