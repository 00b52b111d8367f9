"""Starting and stopping a lab process from the runner side (tests, and ``drill run`` for a private lab).

A lab is its own process, ``python -m drills lab up``, exactly what a user starts by hand: the two
cores are then shared fairly between the lab and the runner, and the only way between them is the
lab's sockets, reached through the environment file it writes. :func:`start_lab` spawns it in a new
process group, reads its stdout until the ``environment: <path>`` line and returns a
:class:`LabProcess`; if the lab exits or does not get ready in time, :class:`~drills.errors.LabError`
carries what it printed on stderr. :meth:`LabProcess.stop` sends SIGTERM (the lab stops cleanly),
then kills the group if it lingers. The lab's stdin is a pipe held by this process: if the runner
dies without stopping it, the lab sees the pipe close and stops by itself.

Both ``with start_lab(...) as lab:`` and ``async with LabProcess(...) as lab:`` work; the async form
waits for the lab in a worker thread, so the event loop keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO

from drills.errors import LabError

ENVIRONMENT_LINE = "environment: "
"""What ``drill lab up`` prints before the path of its environment file, once ready."""

_EXIT_WAIT_S = 10.0
"""Real seconds to wait for the exit status of a lab that closed its stdout."""

_STDERR_TAIL = 4000
"""Characters of the lab's stderr quoted in a :class:`LabError`."""


class LabProcess:
    """One lab process: where its environment file is, and how to stop it."""

    def __init__(self, *, topology: Path | None = None, time_scale: float | None = None,
                 directory: Path | None = None, ready_timeout: float = 30.0,
                 manifests: Path | None = None) -> None:
        self.topology = topology
        self.manifests = manifests
        self.time_scale = time_scale
        self.directory = directory
        self.ready_timeout = ready_timeout
        self.output: list[str] = []
        """Every line the lab printed on stdout so far."""
        self._environment_file: Path | None = None
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._stderr_kept = ""
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._stdout_closed = threading.Event()

    @property
    def environment_file(self) -> Path:
        """The absolute path of the lab's environment file."""
        if self._environment_file is None:
            raise LabError("the lab has not started")
        return self._environment_file

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        """The command line that starts this lab."""
        argv = [sys.executable, "-m", "drills", "lab", "up", "--exit-on-stdin-eof"]
        if self.topology is not None:
            argv += ["--topology", str(self.topology)]
        if self.manifests is not None:
            argv += ["--manifests", str(self.manifests)]
        if self.time_scale is not None:
            argv += ["--time-scale", repr(float(self.time_scale))]
        if self.directory is not None:
            argv += ["--dir", str(self.directory)]
        return argv

    def start(self) -> LabProcess:
        """Spawn the lab and wait until it prints its environment file. Raises LabError if it cannot."""
        if self._process is not None:
            return self
        # Kept open for the lab's whole life (it writes there), closed by stop(): no `with` fits.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="drill-lab-stderr-")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                text=True, bufsize=1, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except OSError as exc:
            self._stderr.close()
            raise LabError(f"could not start a lab process: {exc}") from exc
        self._reader = threading.Thread(target=self._read_stdout, name=f"lab {self._process.pid} stdout",
                                        daemon=True)
        self._reader.start()
        self._ready.wait(self.ready_timeout)
        if self._environment_file is None:
            if self._stdout_closed.is_set():
                # The lab closed its stdout: it is exiting, if it has not already.
                try:
                    why = f"exited with status {self._process.wait(_EXIT_WAIT_S)}"
                except subprocess.TimeoutExpired:
                    why = "closed its output without saying where its environment file is"
            else:
                why = f"was not ready within {self.ready_timeout:g} s"
            stderr = self._stderr_text()
            self.stop()
            raise LabError(f"the lab {why}" + (f"; it said:\n{stderr}" if stderr else ""))
        return self

    def stop(self, *, timeout: float = 10.0) -> int | None:
        """Stop the lab (SIGTERM, then SIGKILL after ``timeout``); its exit status (None if never started)."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                process.wait()
        if process.stdin is not None:
            process.stdin.close()
        if self._reader is not None:
            self._reader.join(timeout)
        if self._stderr is not None:
            self._stderr_kept = self._stderr_text(limit=None)
            self._stderr.close()
            self._stderr = None
        return process.returncode

    def stderr(self) -> str:
        """What the lab has printed on stderr so far (its warnings and errors), also once stopped."""
        return self._stderr_text(limit=None) if self._stderr is not None else self._stderr_kept

    def __enter__(self) -> LabProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> LabProcess:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)

    def _read_stdout(self) -> None:
        """Collect the lab's stdout; note the environment line. Runs until the lab closes stdout."""
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            if self._environment_file is None and line.startswith(ENVIRONMENT_LINE):
                self._environment_file = Path(line.removeprefix(ENVIRONMENT_LINE))
                self._ready.set()
        self._stdout_closed.set()
        self._ready.set()  # the lab is going: whoever waits for it must look now

    def _signal(self, signum: int) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)  # the lab leads its own group (start_new_session)

    def _stderr_text(self, limit: int | None = _STDERR_TAIL) -> str:
        if self._stderr is None:
            return ""
        # pread leaves the file offset alone: the lab shares it and keeps appending at it.
        fd = self._stderr.fileno()
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace").strip()
        return text if limit is None or len(text) <= limit else "..." + text[-limit:]


def start_lab(*, topology: Path | None = None, time_scale: float | None = None,
              directory: Path | None = None, ready_timeout: float = 30.0,
              manifests: Path | None = None) -> LabProcess:
    """Start a lab process and return it once its environment file is written (LabError otherwise)."""
    return LabProcess(topology=topology, time_scale=time_scale, directory=directory,
                      ready_timeout=ready_timeout, manifests=manifests).start()
