"""The signals that stop a run (Ctrl-C's SIGINT, SIGTERM, SIGHUP), counted as presses.

A run's process installs one :class:`Interrupts` before its event loop starts and keeps it until it
has an exit code, so that no signal can kill it between the rollback and the last line of the
record (Python's own SIGINT handler would raise ``KeyboardInterrupt`` wherever the signal lands, and
SIGTERM's default kills the process outright). While a runner is attached, each signal is handed to
it on its event loop; before one is (the lab still starting), a signal stops the command as Ctrl-C
always did (``KeyboardInterrupt``: nothing was touched yet); after it detached (the record is written),
a signal is only acknowledged on stderr.

**Bursts count once.** A signal that comes less than :data:`BURST_S` after the previous one (of any
kind) belongs to the same press: the runner is told of it, but not as a press. A held key, a terminal
that repeats, a supervisor or a script that sends a signal in a loop, a process group getting the
same Ctrl-C through several processes: none of them means "abandon the rollback", which leaves faults
in place in an environment; escalation (:mod:`drills.runner.runner`) takes deliberate presses, each
more than a second after the last signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals a run stops on: SIGHUP (the terminal went away) is handled as SIGTERM is."""
BURST_S = 1.0
"""Real seconds within which signals count as one press: longer than a key's repeat or a kill
loop's interval, shorter than the pause a person takes to read the warning and press again."""

Handler = Callable[[signal.Signals, bool], None]
"""Told, on the run's event loop, of each signal and whether it is a new press (the first of a burst)."""


class Interrupts:
    """The process's handlers of :data:`SIGNALS` (see the module docstring)."""

    def __init__(self, *, burst_s: float = BURST_S) -> None:
        self.burst_s = burst_s
        self._previous: dict[signal.Signals, Any] = {}
        self._last: float | None = None
        self._target: tuple[asyncio.AbstractEventLoop, Handler] | None = None
        self._done = False

    @property
    def installed(self) -> bool:
        """Whether the handlers are in place."""
        return bool(self._previous)

    def install(self) -> None:
        """Take over the signals (main thread only; once)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._received)

    def restore(self) -> None:
        """Put back the handlers found at :meth:`install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def ignore(self) -> None:
        """Ignore the signals from now on: for a process that has its exit code and only exits. (A
        Python handler would not do: the interpreter's finalization puts back the default action,
        which kills the process, for any signal whose handler is not "ignore".)"""
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)

    def attach(self, loop: asyncio.AbstractEventLoop, handler: Handler) -> None:
        """Hand signals to ``handler`` on ``loop`` from now on."""
        self._target = (loop, handler)
        self._done = False

    def detach(self) -> None:
        """The run is recorded: later signals are acknowledged and otherwise ignored."""
        self._target = None
        self._done = True

    def _received(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler: it may run between any two bytecodes of the main thread, so it only
        # schedules work on the loop (call_soon_threadsafe is safe here) or writes with os.write.
        sig = signal.Signals(signum)
        now = time.monotonic()
        press = self._last is None or now - self._last >= self.burst_s
        self._last = now
        target = self._target
        if target is not None:
            loop, handler = target
            with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
                loop.call_soon_threadsafe(handler, sig, press)
            return
        if self._done:
            if press:
                with contextlib.suppress(OSError):
                    os.write(2, f"drill: {sig.name}: the run is recorded; finishing, please wait\n".encode())
            return
        raise KeyboardInterrupt(sig.name)
