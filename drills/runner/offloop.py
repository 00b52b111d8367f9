"""Writing to a terminal, a pipe or a log file without ever holding up the event loop.

A reader that stalls (a CI log collector, a pager not scrolled) fills the pipe's buffer, and a write
then blocks whoever makes it. :class:`OffLoopStream` makes the writes from a thread of its own, so that
the probes never wait on the person watching; :func:`wait_written` is for the end of a run, when the
process may exit next.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import TextIO


class OffLoopStream:
    """Writes to ``stream`` from a thread of its own, in order: :meth:`write` never blocks, and
    :meth:`drain` waits until everything written so far is out (a stream that fails is given up)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None

    def write(self, text: str) -> int:
        """Queue ``text``; returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="progress writer", daemon=True)
            self._thread.start()
        self._queue.put(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to wait for: the thread flushes after each write; see :meth:`drain`."""

    def drain(self) -> None:
        """Wait until everything written so far is out."""
        if self._thread is not None:
            self._queue.join()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def _run(self) -> None:
        broken = False
        while True:
            text = self._queue.get()
            if not broken:
                try:
                    self.stream.write(text)
                    if self._queue.empty():
                        self.stream.flush()
                except (OSError, ValueError):  # the reader went away: nobody to show it to
                    broken = True
            self._queue.task_done()


def wait_written(stream: TextIO | OffLoopStream) -> None:
    """Wait until ``stream`` has written everything (the end of the run: the process may exit next)."""
    if isinstance(stream, OffLoopStream):
        stream.drain()
    else:
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
