"""Chaos Toolkit probes: drill's probes measured now, drill's waits, and drill's comparisons.

:func:`signal` builds the scenario's probe exactly as ``drill run`` does (the installed ``drill.probes``
kind with its parameters), takes a few samples at its period and returns one of its live signals (the
steady state, an answer, ready replicas, an error rate), for a hypothesis's tolerance to judge;
:func:`holds` is that tolerance for a comparison (drill's own :meth:`~drills.scenario.Comparison.holds`).
:func:`wait` sleeps a scenario duration on the environment's clock (a lab's runs faster);
:func:`wait_until` samples a probe until a condition on its signal holds, failing after the timeout.
"""

from collections.abc import Mapping
from typing import Any

from drills.chaostoolkit.session import ChaosRun, DrillStopped, current
from drills.errors import DrillError
from drills.plugins import probe_types
from drills.scenario import Comparison
from drills.units import format_duration
from probes.base import JSONValue, Probe, Sample, SignalValue

__all__ = ["holds", "signal", "wait", "wait_until"]

SAMPLES = 3
"""Samples a measurement takes: as many as the probes need to call a state steady."""
STEADY_WITHIN_S = 30.0
"""Scenario seconds the ``steady`` signal is awaited, as ``drill run`` awaits the steady state rather than
judging one sample: a name server's lost reply on a busy machine is not the system leaving it."""


def signal(probe: str, kind: str, spec: dict[str, Any], every: float, signal: str,
           configuration: dict[str, Any] | None = None) -> SignalValue:
    """Signal ``signal`` of the scenario's probe ``probe`` (of kind ``kind``, its parameters ``spec``,
    sampled every ``every`` scenario seconds), measured now; ``steady`` is awaited for up to
    :data:`STEADY_WITHIN_S`."""
    run = current(configuration)
    found = _probe(run, probe, kind, spec, every)
    if signal == "steady":
        return run.run(_steady(run, found))
    return run.run(_measure(run, found, signal))


async def _steady(run: ChaosRun, probe: Probe) -> SignalValue:
    """The ``steady`` signal, awaited; False, not an error, when the drill must stop meanwhile: a probe
    that raises in the hypothesis fails the experiment, and Chaos Toolkit's default rollback strategy then
    skips the rollbacks that undo the faults."""
    try:
        return await _until(run, probe, "steady", _comparison("==", "true"), within=STEADY_WITHIN_S,
                            fail=False)
    except DrillStopped:
        return False


def holds(op: str, bound: float | str, value: SignalValue = None) -> bool:
    """Whether ``value`` satisfies ``<op> <bound>``, as a drill expectation judges it (an unknown
    value satisfies nothing). As a tolerance, Chaos Toolkit passes the measured ``value``; it has a
    default only because the experiment's validation asks every argument without one to be given."""
    return _comparison(op, bound).holds(value)


def wait(seconds: float, configuration: dict[str, Any] | None = None) -> float:
    """Wait ``seconds`` scenario seconds (real seconds divided by a lab's time scale); returns them."""
    run = current(configuration)
    run.run(run.sleep(seconds))
    return seconds


def wait_until(probe: str, kind: str, spec: dict[str, Any], every: float, signal: str, op: str,
               bound: float | str, timeout: float,
               configuration: dict[str, Any] | None = None) -> SignalValue:
    """Sample the scenario's probe until its ``signal`` satisfies ``<op> <bound>``; returns the value
    then. Fails after ``timeout`` scenario seconds, saying what the signal was."""
    run = current(configuration)
    found = _probe(run, probe, kind, spec, every)
    return run.run(_until(run, found, signal, _comparison(op, bound), within=timeout, fail=True))


def _comparison(op: str, bound: float | str) -> Comparison:
    return Comparison(subject="value", probe="", name="", op=op, value=bound, unit=None,
                      text=f"value {op} {bound}")


def _probe(run: ChaosRun, name: str, kind: str, spec: dict[str, Any], every: float) -> Probe:
    factory = probe_types().get(kind)
    if factory is None:
        known = ", ".join(sorted(probe_types()))
        raise DrillError(f"no probe kind {kind!r} is installed (installed: {known})")
    return factory(name, factory.Spec.model_validate(spec), run.targets, every=every)


async def _sample(run: ChaosRun, probe: Probe) -> Sample:
    t, real = run.clock.now(), run.clock.real()
    values: Mapping[str, JSONValue] = await probe.sample()
    return Sample(probe.name, t, real, values, run.clock.now() - t)


async def _measure(run: ChaosRun, probe: Probe, name: str) -> SignalValue:
    recent: list[Sample] = []
    try:
        for _ in range(SAMPLES):
            if recent:
                await run.clock.sleep(probe.period)
            recent.append(await _sample(run, probe))
        return probe.signals(recent).get(name)
    finally:
        await probe.aclose()


async def _until(run: ChaosRun, probe: Probe, name: str, condition: Comparison, *, within: float,
                 fail: bool) -> SignalValue:
    """Sample until the signal satisfies ``condition``, for ``within`` scenario seconds at most; then,
    with ``fail``, raise, else return the last value."""
    recent: list[Sample] = []
    deadline = run.clock.now() + within
    try:
        while True:
            recent = [*recent[-(SAMPLES - 1):], await _sample(run, probe)]
            value = probe.signals(recent).get(name)
            if condition.holds(value):
                return value
            if run.clock.now() >= deadline:
                if not fail:
                    return value
                raise DrillError(f"{probe.name}.{name} {condition.op} {condition.value} did not hold within "
                                 f"{format_duration(within)} ({probe.name}.{name} was {value})")
            await run.sleep(probe.period)
    finally:
        await probe.aclose()
