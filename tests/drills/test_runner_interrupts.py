"""Signals counted as presses: a burst is one, each goes to the attached run on its loop, a signal
before any run stops the command as Ctrl-C did, and one after the record is only acknowledged."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from drills.runner.interrupts import Interrupts

BURST = 0.2


async def test_a_burst_is_one_press_and_a_signal_after_a_pause_is_the_next() -> None:
    interrupts = Interrupts(burst_s=BURST)
    before = signal.getsignal(signal.SIGHUP)
    seen: list[tuple[str, bool]] = []
    arrived = asyncio.Event()

    def handler(sig: signal.Signals, press: bool) -> None:
        seen.append((sig.name, press))
        arrived.set()

    interrupts.install()
    try:
        interrupts.attach(asyncio.get_running_loop(), handler)
        for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.raise_signal(sig)
        started = time.monotonic()
        while len(seen) < 4:
            arrived.clear()
            await arrived.wait()
        await asyncio.sleep(max(0.0, BURST * 1.5 - (time.monotonic() - started)))
        signal.raise_signal(signal.SIGINT)
        while len(seen) < 5:
            arrived.clear()
            await arrived.wait()
    finally:
        interrupts.restore()
    assert seen == [("SIGINT", True), ("SIGINT", False), ("SIGTERM", False), ("SIGHUP", False),
                    ("SIGINT", True)]
    assert signal.getsignal(signal.SIGHUP) is before


def test_before_a_run_a_signal_stops_the_command_and_after_it_only_says_so(
        capfd: pytest.CaptureFixture[str]) -> None:
    interrupts = Interrupts(burst_s=0.0)
    interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        interrupts.detach()
        signal.raise_signal(signal.SIGINT)  # the run is recorded: nothing is raised
    finally:
        interrupts.restore()
    assert "drill: SIGINT: the run is recorded; finishing, please wait" in capfd.readouterr().err
