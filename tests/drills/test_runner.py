"""The runner end to end on fakes: steps, waits, guards, rollback on every way out, verdicts, run.json.

The fakes stand for a world with one number in it: a ``gauge`` probe reads it (steady at 0), a
``set`` fault sets it and its undo puts it back. The lab-backed drills are in tests/integration.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import signal
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

import reports
from drills.environment import Environment, Lab
from drills.errors import FaultError
from drills.faults.base import FaultBase, Undo
from drills.journal import pending_undos, read_journal
from drills.plugins import Plugins
from drills.recover import needs_recovery
from drills.runner import Runner, RunOptions, bind
from drills.runner.interrupts import Interrupts
from drills.runner.livestate import LiveState
from drills.runner.progress import PlainLog
from drills.runner.sampling import SamplingSettings
from drills.runner.steps import RevertPolicy
from drills.scenario import load_scenario
from probes.base import BLIND, Marks, Metric, ProbeBase, Sample, SignalValue

SCALE = 200.0
"""Fast enough that a 10-second scenario takes 50 ms, slow enough for 1 s probe periods to be kept."""


class World:
    """The one number the fakes share, and knobs to make them misbehave."""

    def __init__(self) -> None:
        self.value = 0.0
        self.inject_error: FaultError | None = None
        self.unpreparable: float | None = None
        """A value the ``set`` fault cannot prepare (as a zone the cluster lacks)."""
        self.revert_failures = 0
        self.revert_gate: asyncio.Event | None = None
        self.reverts = 0
        self.blind = False
        self.failing: str | None = None
        """Why the gauge's samples fail (each says so and measures nothing), while set."""
        self.never_steady = False
        self.injected = asyncio.Event()
        self.reverting = asyncio.Event()
        self.holding = asyncio.Event()
        """Set once a ``hold`` fault has changed the world and hangs in its inject."""
        self.probe_broken = False
        self.reverted: list[float] = []
        """The ``value`` parameter of each fault undone, in the order they were undone."""
        self.journal_at_inject: list[list[str]] = []
        """The events on disk when each inject began."""
        self.journal: Path | None = None
        self.prepare_gate: asyncio.Event | None = None
        self.preparing = asyncio.Event()


def plugins_for(world: World) -> Plugins:
    class Gauge(ProbeBase):
        class Spec(BaseModel):
            model_config = ConfigDict(extra="forbid")

        SIGNALS: ClassVar[tuple[str, ...]] = ("value", "steady")
        METRICS: ClassVar[tuple[str, ...]] = ("peak", "time_to_change", "never", "recovery_start",
                                              "failed_regions")

        def __init__(self, name: str, spec: BaseModel, targets: Any, *, every: float) -> None:
            self.name, self.period = name, every

        async def sample(self) -> dict[str, Any]:
            if world.probe_broken:
                raise RuntimeError("the probe has a bug")
            if world.blind:
                await asyncio.Event().wait()
            if world.failing is not None:
                return {BLIND: world.failing}
            return {"value": world.value}

        def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
            if recent[-1].blind is not None:
                return {"value": None, "steady": False}
            value = float(recent[-1].values["value"])  # type: ignore[arg-type]
            return {"value": value, "steady": value == 0 and not world.never_steady}

        def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
            seen = [s for s in samples if s.blind is None]
            changed = next((s.t for s in seen if s.values["value"] != 0), None)
            start = marks.incident_start
            return {
                "peak": Metric(max(float(s.values["value"]) for s in seen), "count"),  # type: ignore[arg-type]
                "time_to_change": Metric(None if changed is None or start is None else changed - start, "s",
                                         error=self.period / 2),
                "never": Metric(None, "s", note="the event never happened"),
                "recovery_start": Metric(marks.recovery_start, "s"),
                "failed_regions": Metric(",".join(sorted(marks.failed_regions)), ""),
            }

    class SetValue(FaultBase):
        class Params(BaseModel):
            model_config = ConfigDict(extra="forbid", frozen=True)
            cluster: str
            value: float = 5.0
            fail: bool = False
            """Fail the inject after changing the world, once a ``hold`` fault hangs in its own."""
            hold: bool = False
            """Hang in the inject after changing the world."""

        def __init__(self, params: Any) -> None:
            self.params = params

        async def prepare(self, targets: Any) -> Undo:
            world.preparing.set()
            if world.prepare_gate is not None:
                await world.prepare_gate.wait()
            if self.params.value == world.unpreparable:
                raise FaultError(f"the gauge cannot hold {self.params.value:g}")
            return Undo(fault="set", region=self.params.cluster,
                        summary=f"set the value to {self.params.value:g}",
                        objects=["us/Gauge//value"], data={"previous": world.value})

        async def inject(self, targets: Any, undo: Undo) -> None:
            if world.journal is not None:
                world.journal_at_inject.append(events(world.journal.parent))
            world.value += self.params.value
            world.injected.set()
            if self.params.hold:
                world.holding.set()
                await asyncio.Event().wait()
            if self.params.fail:
                await world.holding.wait()
                raise FaultError("cordoned 1 of 2 nodes, then the API said no", transient=True)
            if world.inject_error is not None:
                raise world.inject_error

        async def revert(self, targets: Any, undo: Undo) -> None:
            world.reverting.set()
            if world.revert_gate is not None:
                await world.revert_gate.wait()
            if world.revert_failures > 0:
                world.revert_failures -= 1
                raise FaultError("the API said no", transient=True)
            world.reverts += 1
            world.reverted.append(self.params.value)
            world.value -= self.params.value

        @staticmethod
        def by_hand(undo: Undo) -> str:
            return "set value back"

    return Plugins(faults={"set": SetValue}, probes={"gauge": Gauge})


def environment(tmp_path: Path) -> Environment:
    return Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "fake", "timeScale": SCALE,
        "regions": {"us": {"context": "fake-us", "ingress": {"namespace": "i", "deployment": "i"},
                           "endpoint": "us", "target": "us.example"}},
        "trafficManager": {"fqdn": "shop.example", "nameservers": ["127.0.0.1:53"]},
        "path": str(tmp_path / "environment.yaml"),
    })


def scenario_file(tmp_path: Path, steps: str, *, expect: str = "", guards: str = "",
                  rollback: str = "auto") -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(f"""apiVersion: drill/v1
name: fake-drill
description: a drill on fakes
rollback: {rollback}
probes:
  g: {{kind: gauge, every: 1s}}
steps:
{steps}
expect:
{expect or "  - g.peak >= 1"}
guards:
{guards or "  []"}
""".replace("guards:\n  []", "guards: []"), encoding="utf-8")
    return path


async def run(tmp_path: Path, world: World, steps: str, *, options: RunOptions | None = None,
              out: io.StringIO | None = None, **kwargs: str) -> tuple[dict[str, Any], str, Path]:
    plugins = plugins_for(world)
    env = environment(tmp_path)
    scenario = load_scenario(scenario_file(tmp_path, steps, **kwargs), regions=set(env.regions),
                             plugins=plugins)
    out = out or io.StringIO()
    drill = bind(scenario, env, plugins=plugins)
    try:
        runner = Runner(drill, tmp_path / "runs" / "r1", render=reports.render,
                        options=options or FAST,
                        progress=PlainLog(out))
        result = await runner.run()
    finally:
        await drill.aclose()
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["exit_code"] == result.exit_code
    return record, out.getvalue(), result.run_dir


FAST = RunOptions(steady_timeout_s=20, steady_timeout_min_real_s=0, failback_timeout_s=20,
                  revert=RevertPolicy(backoff_real_s=0.01))


def events(run_dir: Path) -> list[str]:
    return [e.event for e in read_journal(run_dir / "events.jsonl")]


@pytest.fixture
def world() -> World:
    return World()


FAULT_THEN_WAIT = """  - {id: bump, fault: set, cluster: us, value: 5}
  - wait: g.value == 5
    timeout: 30s
  - wait: 5s
"""


async def test_a_drill_that_holds_its_expectations_passes_and_undoes_its_fault(tmp_path: Path,
                                                                                world: World) -> None:
    record, out, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT,
                                     expect="  - g.peak >= 5\n  - g.time_to_change < 3s")
    assert (record["verdict"], record["exit_code"], record["reason"]) == ("passed", 0, "")
    assert world.value == 0
    assert world.reverts == 1
    assert record["metrics"]["g.peak"]["value"] == 5
    rollback = next(e for e in record["timeline"] if e["event"] == "rollback_started")
    # Recovery starts as the rollback begins (1 s of scenario time is 5 ms real: a busy machine's slack).
    assert 0.0 <= rollback["t"] - record["metrics"]["g.recovery_start"]["value"] < 1.0
    assert record["metrics"]["g.time_to_change"]["error"] == 0.5
    assert [e["passed"] for e in record["expectations"]] == [True, True]
    assert record["rollback"] == [{"step": "bump", "fault": "set", "region": "us",
                                   "summary": "set the value to 5",
                                   "objects": ["us/Gauge//value"], "outcome": "reverted", "attempts": 1,
                                   "error": None, "t": record["rollback"][0]["t"], "trial": 1}]
    assert record["steady_state"]["before"]
    assert record["steady_state"]["returned"]
    applied = next(e for e in record["timeline"] if e["event"] == "fault_applied")
    assert record["incident_start_t"] <= applied["t"]
    assert record["run_id"] == run_dir.name
    assert record["probes"]["g"]["kind"] == "gauge"
    assert record["probes"]["g"]["samples"] == sum(1 for _ in (run_dir / "samples.jsonl").open())
    assert events(run_dir) == ["run_started", "fault_prepared", "fault_applied", "revert_started",
                               "fault_reverted", "run_ended"]
    assert (run_dir / "report.md").is_file()
    assert (run_dir / "junit.xml").is_file()
    assert "fake-drill: PASSED (exit 0)" in out
    assert "fault_applied [bump]" in out


async def test_a_probe_blind_during_the_incident_leaves_its_metrics_unmeasured_and_the_drill_failed(
        tmp_path: Path, world: World) -> None:
    """Observation 7 of issue 8: a floor read around a hole in the samples is no measurement."""
    async def fail_for_a_while() -> None:
        await world.injected.wait()
        world.failing = "connection refused"
        await asyncio.sleep(8 / SCALE)  # 8 scenario seconds of failed samples, one a second
        world.failing = None

    failing = asyncio.create_task(fail_for_a_while())
    # Stalls of 10 ms real (2 s here) are the machine's; the 8 s of failed samples are not.
    options = replace(FAST, sampling=SamplingSettings(stall_real_s=0.01, gap_real_s=0.01))
    record, out, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT, expect="  - g.peak >= 5",
                                     options=options)
    await failing
    [expectation] = record["expectations"]
    assert not expectation["passed"]
    assert expectation["value"] is None
    assert "unmeasured: probe g was blind from " in expectation["note"]
    assert "samples failed: connection refused" in expectation["note"]
    assert (record["verdict"], record["exit_code"]) == ("failed", 1)
    assert "probe g was blind" in record["reason"]
    [blind] = [b for b in record["probes"]["g"]["blind"] if b["samples"]]
    assert blind["reason"] == "connection refused"
    assert blind["samples"] >= 5
    assert blind["end"] > record["incident_start_t"]
    assert blind in record["trials"][0]["blind"]["g"]
    assert "probe g was blind" in (run_dir / "report.md").read_text()
    assert "probe g was blind" in out
    assert world.value == 0


async def test_the_timeline_follows_the_steps_in_order(tmp_path: Path, world: World) -> None:
    record, _, _ = await run(tmp_path, world, FAULT_THEN_WAIT)
    kinds = [(e["event"], e["step"]) for e in record["timeline"]]
    assert kinds == [
        ("probes_started", None), ("steady_state", None),
        ("step_started", "bump"), ("fault_applied", "bump"), ("step_done", "bump"),
        ("step_started", "step-2"), ("wait_done", "step-2"), ("step_done", "step-2"),
        ("step_started", "step-3"), ("wait_done", "step-3"), ("step_done", "step-3"),
        ("rollback_started", None), ("fault_reverted", "bump"), ("steady_state_returned", None),
        ("run_ended", None)]
    times = [e["t"] for e in record["timeline"]]
    assert times == sorted(times)
    five = next(e for e in record["timeline"] if e["event"] == "wait_done" and e["step"] == "step-3")
    started = next(e for e in record["timeline"] if e["event"] == "step_started" and e["step"] == "step-3")
    # 5 s, plus whatever a busy machine adds (20 s of scenario time is 0.1 s real here).
    assert 5.0 <= five["t"] - started["t"] < 25.0


async def test_an_expectation_that_fails_fails_the_run_with_exit_1(tmp_path: Path, world: World) -> None:
    record, _, _ = await run(tmp_path, world, FAULT_THEN_WAIT, expect="  - g.peak > 10")
    assert (record["verdict"], record["exit_code"]) == ("failed", 1)
    assert "g.peak > 10" in record["reason"]
    assert "measured 5" in record["reason"]
    assert world.value == 0


async def test_an_unmeasured_metric_fails_its_expectation(tmp_path: Path, world: World) -> None:
    record, _, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT, expect="  - g.never < 1m")
    assert record["exit_code"] == 1
    assert record["expectations"][0]["passed"] is False
    assert record["expectations"][0]["value"] is None
    assert record["expectations"][0]["note"] == "unmeasured: the event never happened"
    assert record["metrics"]["g.never"] == {
        "value": None, "unit": "s", "error": None, "note": "the event never happened",
        "trials": {"min": None, "median": None, "max": None, "values": [None], "worst_trial": 1,
                   "worst_phase": None}}
    assert "| `g.never < 1m` | unmeasured | **FAIL** | unmeasured: the event never happened |" in (
        run_dir / "report.md").read_text()
    assert 'message="g.never &lt; 1m: unmeasured"' in (run_dir / "junit.xml").read_text()


async def test_a_condition_wait_that_times_out_fails_naming_the_wait_and_still_rolls_back(
        tmp_path: Path, world: World) -> None:
    steps = """  - {id: bump, fault: set, cluster: us}
  - {id: for-ten, wait: g.value == 10, timeout: 5s}
  - wait: 1h
"""
    record, _, run_dir = await run(tmp_path, world, steps)
    assert (record["verdict"], record["exit_code"]) == ("failed", 1)
    assert "wait for-ten (g.value == 10) timed out after 5.0s" in record["reason"]
    assert "wait_timed_out" in [e["event"] for e in record["timeline"]]
    assert world.value == 0
    assert "fault_reverted" in events(run_dir)


async def test_a_guard_that_holds_for_its_duration_aborts_with_exit_2(tmp_path: Path, world: World) -> None:
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"
    record, _, _ = await run(tmp_path, world, steps, guards="  - g.value > 3 for 4s")
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    guard = record["guards"][0]
    assert guard["guard"] == "g.value > 3 for 4s"
    assert guard["tripped"]
    assert 4.0 <= guard["t"] - record["incident_start_t"] < 25.0
    assert "g.value > 3 for 4s" in record["reason"]
    assert "g.value was 5 at every sample for " in record["reason"]
    # The duration as every other is shown (reports.base.format_value): "for 4 s", not "for 4.0s".
    held = record["reason"].split("at every sample for ", 1)[1].split(")")[0].split(";")[0]
    assert re.fullmatch(r"\d+(\.\d+)? s", held), held
    assert world.value == 0
    assert record["rollback"][0]["outcome"] == "reverted"


async def test_a_guard_whose_probe_goes_blind_trips(tmp_path: Path, world: World) -> None:
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"

    async def go_blind() -> None:
        await world.injected.wait()
        world.blind = True

    blind = asyncio.create_task(go_blind())
    options = replace(FAST, failback_timeout_s=5,
                      sampling=SamplingSettings(sample_timeout_s=5, sample_timeout_min_real_s=0))
    record, _, run_dir = await run(tmp_path, world, steps, guards="  - g.value > 100", options=options)
    await blind
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert "stopped measuring" in record["reason"]
    assert world.value == 0
    # Each sample cancelled past its timeout is recorded as blind, saying so.
    lost = [json.loads(line) for line in (run_dir / "samples.jsonl").open() if '"blind"' in line]
    assert lost
    assert all(s["values"] == {"blind": "a sample ran past 5s and was cancelled"} for s in lost)


async def test_a_guard_whose_probe_measures_nothing_trips(tmp_path: Path, world: World) -> None:
    """Samples that come back failed are no more sight than samples that never come back."""
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"

    async def fail() -> None:
        await world.injected.wait()
        world.failing = "connection refused"

    failing = asyncio.create_task(fail())
    options = replace(FAST, failback_timeout_s=5,
                      sampling=SamplingSettings(sample_timeout_s=5, sample_timeout_min_real_s=0))
    record, _, _ = await run(tmp_path, world, steps, guards="  - g.value > 100", options=options)
    await failing
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert "probe 'g' stopped measuring" in record["reason"]
    assert world.value == 0


async def test_no_steady_state_refuses_the_drill_and_touches_nothing(tmp_path: Path, world: World) -> None:
    world.never_steady = True
    record, _, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT,
                                   options=replace(FAST, steady_timeout_s=3))
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert "steady state" in record["reason"]
    assert "nothing was touched" in record["reason"]
    assert record["rollback"] == []
    assert record["incident_start"] is None
    assert "fault_prepared" not in events(run_dir)


async def test_a_later_fault_that_cannot_be_prepared_refuses_the_drill_before_the_first_fault(
        tmp_path: Path, world: World) -> None:
    world.unpreparable = 7
    steps = "  - {id: bump, fault: set, cluster: us, value: 5}\n  - wait: 5s\n" \
            "  - {id: bump-more, fault: set, cluster: us, value: 7}\n"
    record, _, run_dir = await run(tmp_path, world, steps)
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert "step bump-more (set in us) could not be prepared: the gauge cannot hold 7" in record["reason"]
    assert "nothing was touched" in record["reason"]
    assert not world.injected.is_set()
    assert world.value == 0
    assert record["rollback"] == []
    assert record["incident_start"] is None
    assert "fault_prepared" not in events(run_dir)
    assert [e["event"] for e in record["timeline"] if e["step"] == "bump-more"] == ["fault_failed"]


async def test_force_runs_without_steady_state(tmp_path: Path, world: World) -> None:
    world.never_steady = True
    record, _, _ = await run(tmp_path, world, FAULT_THEN_WAIT,
                             options=replace(FAST, force=True, steady_timeout_s=2, failback_timeout_s=2))
    assert record["steady_state"] == {"before": False, "returned": False, "returned_t": None}
    assert record["exit_code"] == 0
    assert world.value == 0


async def test_a_fault_the_environment_refuses_fails_the_design(tmp_path: Path, world: World) -> None:
    world.inject_error = FaultError("drain timed out: a PodDisruptionBudget forbids it", transient=False)
    record, _, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT)
    assert (record["verdict"], record["exit_code"]) == ("failed", 1)
    assert "step bump (set in us) failed: drain timed out" in record["reason"]
    # The inject changed the world before failing: the undo still runs.
    assert world.value == 0
    assert record["rollback"][0]["outcome"] == "reverted"
    assert events(run_dir)[:4] == ["run_started", "fault_prepared", "fault_failed", "revert_started"]


async def test_a_transient_fault_error_is_an_error_of_the_drill(tmp_path: Path, world: World) -> None:
    world.inject_error = FaultError("connection refused", transient=True)
    record, _, _ = await run(tmp_path, world, FAULT_THEN_WAIT)
    assert (record["verdict"], record["exit_code"]) == ("error", 2)


async def test_a_revert_is_retried_before_it_counts_as_failed(tmp_path: Path, world: World) -> None:
    world.revert_failures = 2
    record, _, _ = await run(tmp_path, world, FAULT_THEN_WAIT)
    assert record["exit_code"] == 0
    assert record["rollback"][0]["attempts"] == 3
    assert world.value == 0


async def test_a_revert_that_keeps_failing_leaves_exit_3(tmp_path: Path, world: World) -> None:
    world.revert_failures = 10
    record, _, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT)
    assert (record["verdict"], record["exit_code"]) == ("error", 3)
    assert world.value == 5
    entry = record["rollback"][0]
    assert (entry["outcome"], entry["attempts"], entry["error"]) == ("failed", 3, "the API said no")
    assert "rollback incomplete" in record["reason"]
    assert "revert_failed" in events(run_dir)


async def test_manual_rollback_leaves_the_faults_and_says_how_to_undo_them(tmp_path: Path,
                                                                          world: World) -> None:
    record, out, _ = await run(tmp_path, world, FAULT_THEN_WAIT, rollback="manual")
    assert record["exit_code"] == 3
    assert record["rollback"][0]["outcome"] == "manual"
    assert world.value == 5
    # Nothing was undone, so recovery never started: failback metrics must not count from the end.
    assert record["metrics"]["g.recovery_start"]["value"] is None
    assert "ROLLBACK IS MANUAL" in out
    assert "kubectl --context fake-us set value back" in out


async def test_an_undo_step_reverts_mid_run_and_marks_recovery(tmp_path: Path, world: World) -> None:
    steps = """  - {id: bump, fault: set, cluster: us}
  - wait: 3s
  - undo: bump
  - wait: g.value == 0
    timeout: 10s
"""
    record, _, run_dir = await run(tmp_path, world, steps)
    assert record["exit_code"] == 0
    assert world.reverts == 1
    timeline = [(e["event"], e["step"]) for e in record["timeline"]]
    assert timeline.index(("fault_reverted", "bump")) < timeline.index(("step_done", "step-3"))
    assert "rollback_started" not in [e for e, _ in timeline]
    assert events(run_dir).count("fault_reverted") == 1


async def test_parallel_steps_run_together(tmp_path: Path, world: World) -> None:
    steps = """  - parallel:
      - {id: a, fault: set, cluster: us, value: 2}
      - {id: b, fault: set, cluster: us, value: 3}
      - wait: 2s
  - wait: g.value == 5
    timeout: 10s
"""
    record, _, _ = await run(tmp_path, world, steps)
    assert record["exit_code"] == 0, (record["reason"], record["probes"])
    assert world.value == 0
    assert sorted(r["step"] for r in record["rollback"]) == ["a", "b"]


async def test_sigint_during_the_steps_aborts_and_a_burst_of_them_does_not_abandon_the_rollback(
        tmp_path: Path, world: World) -> None:
    world.revert_gate = asyncio.Event()
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"

    async def interrupt() -> None:
        await world.injected.wait()
        os.kill(os.getpid(), signal.SIGINT)
        await world.reverting.wait()
        for _ in range(30):  # during the rollback, which waits on the gate: one press, not 30
            os.kill(os.getpid(), signal.SIGINT)
        # The handler runs once the loop reads the signal's wakeup byte; give it a generous moment.
        await asyncio.sleep(0.2)
        assert world.reverts == 0
        world.revert_gate.set()

    before = signal.getsignal(signal.SIGINT)
    task = asyncio.create_task(interrupt())
    record, out, _ = await run(tmp_path, world, steps)
    await task
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert record["reason"] == "interrupted by SIGINT"
    assert "abandon" not in out
    assert world.value == 0
    assert record["rollback"][0]["outcome"] == "reverted"
    assert signal.getsignal(signal.SIGINT) is before  # the run's handlers are gone with it


class Printed(io.StringIO):
    """What a run printed, and a way to await a text (a signal's note comes once the loop reads its
    wakeup)."""

    def __init__(self) -> None:
        super().__init__()
        self._written = asyncio.Event()

    def write(self, text: str) -> int:
        self._written.set()
        return super().write(text)

    async def until(self, text: str) -> None:
        while text not in self.getvalue():
            self._written.clear()
            await self._written.wait()


async def test_ctrl_c_in_the_rollback_asks_and_the_next_abandons_it_with_exit_3(
        tmp_path: Path, world: World) -> None:
    world.revert_gate = asyncio.Event()  # never set: the rollback hangs as on an API that went away
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"
    burst = 0.05
    options = replace(FAST, interrupts=Interrupts(burst_s=burst))
    out = Printed()

    async def press_three_times() -> None:
        await world.injected.wait()
        os.kill(os.getpid(), signal.SIGINT)
        await world.reverting.wait()
        await asyncio.sleep(burst * 2)  # a press is the first signal after a pause of a burst's length
        os.kill(os.getpid(), signal.SIGINT)
        await out.until("press Ctrl-C again")
        await asyncio.sleep(burst * 2)
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    task = asyncio.create_task(press_three_times())
    record, printed, run_dir = await asyncio.wait_for(run(tmp_path, world, steps, options=options, out=out),
                                                      timeout=30)
    await task
    assert record["exit_code"] == 3
    assert "rolling back: press Ctrl-C again to abandon the rollback and leave faults in place" in printed
    assert world.value == 5  # the fault stays in place, as the person chose
    assert record["rollback"][0]["outcome"] == "failed"
    assert record["rollback"][0]["error"] == "the rollback was abandoned (Ctrl-C)"
    assert f"finish the rollback with: drill recover r1 --runs-dir {tmp_path / 'runs'}" in printed
    assert "ROLLBACK INCOMPLETE; still in place:" in printed
    assert "bump: set the value to 5" in printed
    assert "undo with: kubectl --context fake-us set value back" in printed
    # The journal leaves the fault pending, as drill recover looks for it.
    assert needs_recovery(run_dir)
    assert [u.step for u in pending_undos(read_journal(run_dir / "events.jsonl"))] == ["bump"]
    assert events(run_dir)[-1] == "run_ended"
    assert signal.getsignal(signal.SIGINT) is before


async def test_sigterm_in_the_rollback_never_abandons_it(tmp_path: Path, world: World) -> None:
    world.revert_gate = asyncio.Event()
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"
    burst = 0.05
    out = Printed()

    async def terminate() -> None:
        await world.injected.wait()
        for _ in range(3):  # three presses' worth, a burst apart: nobody may be there to decide
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(burst * 2)
        await out.until("SIGTERM: rolling back, please wait")
        assert world.revert_gate is not None
        world.revert_gate.set()

    task = asyncio.create_task(terminate())
    record, printed, _ = await run(tmp_path, world, steps, out=out,
                                   options=replace(FAST, interrupts=Interrupts(burst_s=burst)))
    await task
    assert (record["exit_code"], record["reason"]) == (2, "interrupted by SIGTERM")
    assert world.value == 0
    assert "abandon" not in printed


async def test_a_cancelled_run_still_rolls_back_and_writes_its_record_and_reports(
        tmp_path: Path, world: World) -> None:
    plugins = plugins_for(world)
    env = environment(tmp_path)
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"
    scenario = load_scenario(scenario_file(tmp_path, steps), regions=set(env.regions), plugins=plugins)
    drill = bind(scenario, env, plugins=plugins)
    run_dir = tmp_path / "runs" / "r1"
    try:
        task = asyncio.create_task(Runner(drill, run_dir, render=reports.render, options=FAST,
                                          progress=PlainLog(io.StringIO())).run())
        await world.injected.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await drill.aclose()
    assert world.value == 0
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert record["reason"] == "the run was cancelled"
    assert record["rollback"][0]["outcome"] == "reverted"
    assert (run_dir / "report.md").is_file()
    assert (run_dir / "junit.xml").is_file()
    assert events(run_dir)[-2:] == ["fault_reverted", "run_ended"]


async def test_sigterm_during_the_steps_rolls_back(tmp_path: Path, world: World) -> None:
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 1h\n"

    async def terminate() -> None:
        await world.injected.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(terminate())
    record, _, _ = await run(tmp_path, world, steps)
    await task
    assert record["reason"].startswith("interrupted by SIGTERM")
    assert world.value == 0


async def test_junit_is_copied_where_asked(tmp_path: Path, world: World) -> None:
    target = tmp_path / "ci" / "out.xml"
    _, _, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT, options=replace(FAST, junit=target))
    assert target.read_text() == (run_dir / "junit.xml").read_text()


async def test_the_undo_record_is_fsynced_before_the_fault_is_injected(
        tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.journal = tmp_path / "runs" / "r1" / "events.jsonl"
    synced: list[list[str]] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        fsync(fd)
        if world.journal is not None and world.journal.exists():
            synced.append(events(world.journal.parent))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    steps = "  - {id: a, fault: set, cluster: us, value: 2}\n  - {id: b, fault: set, cluster: us, value: 3}\n"
    await run(tmp_path, world, steps)
    assert world.value == 0
    assert world.journal_at_inject == [
        ["run_started", "fault_prepared"],
        ["run_started", "fault_prepared", "fault_applied", "fault_prepared"]]
    assert world.journal_at_inject[0] in synced
    assert world.journal_at_inject[1] in synced


async def test_a_fault_failing_in_a_parallel_step_reverts_its_siblings_newest_first(
        tmp_path: Path, world: World) -> None:
    # a is applied, b hangs in its inject (the world already changed), c fails after changing it.
    steps = """  - parallel:
      - {id: a, fault: set, cluster: us, value: 1}
      - {id: b, fault: set, cluster: us, value: 10, hold: true}
      - {id: c, fault: set, cluster: us, value: 100, fail: true}
  - wait: 1h
"""
    record, _, run_dir = await run(tmp_path, world, steps)
    assert (record["verdict"], record["exit_code"]) == ("error", 2)
    assert "step c (set in us) failed: cordoned 1 of 2 nodes" in record["reason"]
    assert world.value == 0
    assert world.reverted == [100, 10, 1]
    assert {r["step"]: r["outcome"] for r in record["rollback"]} == {"a": "reverted", "b": "reverted",
                                                                      "c": "reverted"}
    journal = read_journal(run_dir / "events.jsonl")
    assert [e.fields["step"] for e in journal if e.event == "fault_reverted"] == ["c", "b", "a"]


async def test_sigint_while_a_fault_is_being_injected_reverts_it(tmp_path: Path, world: World) -> None:
    steps = "  - {id: bump, fault: set, cluster: us}\n  - {id: stuck, fault: set, cluster: us, hold: true}\n"

    async def interrupt() -> None:
        await world.holding.wait()
        os.kill(os.getpid(), signal.SIGINT)

    task = asyncio.create_task(interrupt())
    record, _, run_dir = await run(tmp_path, world, steps)
    await task
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert world.value == 0
    assert world.reverted == [5, 5]
    assert [r["outcome"] for r in record["rollback"]] == ["reverted", "reverted"]
    assert events(run_dir)[-5:] == ["revert_started", "fault_reverted", "revert_started", "fault_reverted",
                                    "run_ended"]


async def test_a_probe_that_raises_mid_drill_does_not_stop_the_rollback(tmp_path: Path, world: World) -> None:
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 3s\n"

    async def break_probe() -> None:
        await world.injected.wait()
        world.probe_broken = True

    task = asyncio.create_task(break_probe())
    record, _, _ = await run(tmp_path, world, steps, options=replace(FAST, failback_timeout_s=3))
    await task
    assert world.value == 0
    assert record["rollback"][0]["outcome"] == "reverted"
    assert record["steady_state"]["returned"] is False


async def test_several_faults_are_reverted_newest_first_when_a_guard_trips(tmp_path: Path,
                                                                            world: World) -> None:
    steps = """  - {id: a, fault: set, cluster: us, value: 1}
  - {id: b, fault: set, cluster: us, value: 2}
  - wait: 1h
"""
    record, _, _ = await run(tmp_path, world, steps, guards="  - g.value > 2 for 2s")
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert world.reverted == [2, 1]
    assert world.value == 0


async def test_sigint_during_the_pre_flight_stops_the_drill_before_any_fault(tmp_path: Path,
                                                                             world: World) -> None:
    world.prepare_gate = asyncio.Event()

    async def interrupt() -> None:
        await world.preparing.wait()
        os.kill(os.getpid(), signal.SIGINT)
        # Let the handler run, then let a drill that ignored it go on (and be caught injecting).
        await asyncio.sleep(0.2)
        assert world.prepare_gate is not None
        world.prepare_gate.set()

    task = asyncio.create_task(interrupt())
    record, _, run_dir = await run(tmp_path, world, FAULT_THEN_WAIT)
    await task
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert record["reason"] == "interrupted by SIGINT"
    assert not world.injected.is_set()
    assert "fault_prepared" not in events(run_dir)


async def test_trials_repeat_the_steps_each_from_the_steady_state_and_each_undone(tmp_path: Path,
                                                                                 world: World) -> None:
    options = replace(FAST, trials=3, seed=7)
    record, out, _ = await run(tmp_path, world, FAULT_THEN_WAIT, options=options,
                               expect="  - g.peak >= 5\n  - g.time_to_change < 3s")
    assert (record["verdict"], record["exit_code"]) == ("passed", 0), record["reason"]
    assert (world.value, world.reverts) == (0, 3)
    # Not a lab: nothing tells the probe cycle, so no trial is placed in it.
    assert record["sweep"] == {"trials": 3, "run": 3, "seed": 7, "probe_interval": None, "endpoint": None}
    trials = record["trials"]
    assert [(t["index"], t["phase"], t["target_phase"]) for t in trials] == [(1, None, None), (2, None, None),
                                                                           (3, None, None)]
    # Each trial's marks follow the last one's; its metrics come from its own samples.
    for before, after in itertools.pairwise(trials):
        assert before["incident_start"] < before["recovery_start"] < before["ended"]
        assert before["ended"] <= after["incident_start"]
    recoveries = [t["recovery_start"] for t in trials]
    assert [t["metrics"]["g.recovery_start"]["value"] for t in trials] == recoveries
    assert [t["metrics"]["g.failed_regions"]["value"] for t in trials] == ["us"] * 3
    spread = record["metrics"]["g.peak"]["trials"]
    assert (spread["values"], spread["min"], spread["median"], spread["max"]) == ([5, 5, 5], 5, 5, 5)
    assert [(u["step"], u["trial"], u["outcome"]) for u in record["rollback"]] == [
        ("bump", 1, "reverted"), ("bump", 2, "reverted"), ("bump", 3, "reverted")]
    assert [e["event"] for e in record["timeline"]].count("trial_started") == 3
    assert [e["event"] for e in record["timeline"]].count("steady_state") == 1
    journal = events(tmp_path / "runs" / "r1")
    assert journal.count("fault_prepared") == journal.count("fault_reverted") == 3
    assert "trial 2 of 3" in out


async def test_a_trial_that_ends_early_stops_the_trials_left(tmp_path: Path, world: World) -> None:
    async def terminate_in_trial_two() -> None:
        await world.injected.wait()
        world.injected.clear()
        await world.injected.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(terminate_in_trial_two())
    steps = "  - {id: bump, fault: set, cluster: us}\n  - wait: 30s\n"
    record, _, _ = await run(tmp_path, world, steps, options=replace(FAST, trials=4))
    await task
    assert (record["verdict"], record["exit_code"]) == ("aborted", 2)
    assert record["reason"].startswith("trial 2 of 4: interrupted by SIGTERM"), record["reason"]
    assert (world.value, world.reverts) == (0, 2)
    assert record["sweep"]["run"] == 2
    assert [u["trial"] for u in record["rollback"]] == [1, 2]


async def test_the_live_line_names_the_trial_and_its_phase_and_an_unknown_cycle_is_said(
        tmp_path: Path, world: World) -> None:
    plugins = plugins_for(world)
    # A lab (as if it had proved it), but no lab API behind it: the schedule cannot be read.
    env = environment(tmp_path).model_copy(
        update={"lab": Lab(groundTruth=str(tmp_path / "truth.jsonl"))}).proven_lab()
    scenario = load_scenario(scenario_file(tmp_path, FAULT_THEN_WAIT), regions=set(env.regions),
                             plugins=plugins)
    out = io.StringIO()
    drill = bind(scenario, env, plugins=plugins)
    runner = Runner(drill, tmp_path / "runs" / "r1", render=reports.render,
                    options=replace(FAST, trials=4, seed=1), progress=PlainLog(out))
    lines: list[str | None] = []

    async def look() -> None:
        for _ in range(2):
            await world.injected.wait()
            world.injected.clear()
            lines.append(runner._live().trial)

    watcher = asyncio.create_task(look())
    try:
        result = await runner.run()
    finally:
        await drill.aclose()
    await watcher
    assert lines == ["trial 1 of 4 (phase 0.13)", "trial 2 of 4 (phase 0.38)"]
    assert result.record["sweep"]["probe_interval"] is None
    assert [(t["target_phase"], t["phase"]) for t in result.record["trials"]] == [
        (0.1344, None), (0.3844, None), (0.6344, None), (0.8844, None)]
    assert "faults are not placed in the probe cycle (phases unknown)" in out.getvalue()


async def _at_the_fault(world: World, runner: Runner) -> LiveState:
    await world.injected.wait()
    return runner._live()


class _Drawing(PlainLog):
    """A plain log that says it draws trends (as the live view does)."""

    draws_trends = True


async def test_only_a_view_that_draws_trends_is_handed_the_probes_recent_signals(tmp_path: Path,
                                                                                 world: World) -> None:
    plugins = plugins_for(world)
    env = environment(tmp_path)
    scenario = load_scenario(scenario_file(tmp_path, FAULT_THEN_WAIT), regions=set(env.regions),
                             plugins=plugins)
    histories = {}
    for view in (PlainLog, _Drawing):
        drill = bind(scenario, env, plugins=plugins)
        runner = Runner(drill, tmp_path / "runs" / view.__name__, render=reports.render, options=FAST,
                        progress=view(io.StringIO()))
        world.injected.clear()
        seen = asyncio.create_task(_at_the_fault(world, runner))
        try:
            await runner.run()
        finally:
            await drill.aclose()
        state = await seen
        assert all(p.samples for p in state.probes)
        histories[view] = [len(p.history) for p in state.probes]
    assert histories[PlainLog] == [0]
    assert histories[_Drawing][0] > 0


class BrokenLog(PlainLog):
    """A progress display with a bug: it raises on one event (as any code of the runner's might)."""

    def event(self, entry: Any) -> None:
        if entry["event"] == "probes_started":
            raise RuntimeError("the display has a bug")
        super().event(entry)


async def test_an_error_of_the_runner_itself_is_recorded_as_the_runs_error(tmp_path: Path,
                                                                            world: World) -> None:
    plugins = plugins_for(world)
    env = environment(tmp_path)
    scenario = load_scenario(scenario_file(tmp_path, FAULT_THEN_WAIT), regions=set(env.regions),
                             plugins=plugins)
    drill = bind(scenario, env, plugins=plugins)
    out = io.StringIO()
    try:
        result = await Runner(drill, tmp_path / "runs" / "r1", render=reports.render, options=FAST,
                              progress=BrokenLog(out)).run()
    finally:
        await drill.aclose()
    assert (result.verdict, result.exit_code) == ("error", 2)
    assert result.record["reason"] == "unexpected error: RuntimeError: the display has a bug"
    assert "Traceback" in out.getvalue()
    assert (result.run_dir / "run.json").is_file()
    assert (result.run_dir / "report.md").is_file()
    assert events(result.run_dir)[-1] == "run_ended"
