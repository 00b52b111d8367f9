"""Writing to a terminal, a pipe or a log file without ever holding up the event loop.

A reader that stalls (a CI log collector, a pager not scrolled) fills the pipe's buffer, and a write
then blocks whoever makes it. :class:`OffLoopStream` makes the writes from a thread of its own, so that
the probes never wait on the person watching; :func:`wait_written` is for the end of a run, when the
process may exit next: it waits while the reader makes progress, and gives the stream up once it has
made none for :attr:`OffLoopStream.give_up_s`. A character the stream's encoding cannot show (a
sparkline on a latin-1 terminal) is written as a replacement character, never lost with what follows.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import TextIO


class OffLoopStream:
    """Writes to ``stream`` from a thread of its own, in order: :meth:`write` never blocks, and
    :meth:`drain` waits until everything written so far is out (a stream that fails or stalls is
    given up)."""

    give_up_s = 5.0
    """Real seconds :meth:`drain` waits for a write to complete before it gives the stream up."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._written = threading.Condition()
        self._pending = 0
        self._given_up = False

    @property
    def encoding(self) -> str:
        """The stream's encoding (rich reads it to choose what it may draw)."""
        return getattr(self.stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        """Queue ``text``; returns at once."""
        if self._given_up:
            return len(text)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="progress writer", daemon=True)
            self._thread.start()
        with self._written:
            self._pending += 1
        self._queue.put(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to wait for: the thread flushes after each write; see :meth:`drain`."""

    def drain(self) -> None:
        """Wait until everything written so far is out, or until no write has completed for
        :attr:`give_up_s` (the reader stalled): then give the stream up, writing nothing more."""
        with self._written:
            while self._pending and not self._given_up:
                if not self._written.wait(self.give_up_s):
                    self._given_up = True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def _run(self) -> None:
        while True:
            text = self._queue.get()
            if not self._given_up:
                try:
                    self._write(text)
                    if self._queue.empty():
                        self.stream.flush()
                except (OSError, ValueError):  # the reader went away: nobody to show it to
                    self._given_up = True
            with self._written:
                self._pending -= 1
                self._written.notify_all()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
        except UnicodeEncodeError:
            encoding = self.encoding
            self.stream.write(text.encode(encoding, "replace").decode(encoding))


def wait_written(stream: TextIO | OffLoopStream) -> None:
    """Wait until ``stream`` has written everything (the end of the run: the process may exit next)."""
    if isinstance(stream, OffLoopStream):
        stream.drain()
    else:
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
