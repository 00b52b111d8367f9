"""Errors a user can act on.

Every error drill reports to a user derives from :class:`DrillError`; anything else reaching the
command line is a bug in drill and is shown as such::

    DrillError                      a problem the user can act on; exit 2 unless said otherwise
    ├── SourceError                 a file (scenario, topology, environment) is wrong at file:line:col
    │   └── SourceErrors            several of them, reported together
    ├── EnvironmentUnreachable      the environment's APIs cannot be reached (transient: retry helps)
    ├── LabError                    a lab could not start or stopped unexpectedly
    └── FaultError                  a fault could not be applied or reverted (carries whether a retry helps)
"""

from __future__ import annotations

from dataclasses import dataclass


class DrillError(Exception):
    """A problem the user can act on. ``exit_code`` is what the command line returns for it."""

    exit_code: int = 2


@dataclass(frozen=True)
class SourceLocation:
    """A place in a file, 1-based line and column as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SourceError(DrillError):
    """One problem in a file, at a known place, with what was expected and a suggestion."""

    def __init__(self, location: SourceLocation, message: str, *, hint: str | None = None) -> None:
        self.location = location
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class SourceErrors(DrillError):
    """Every problem found in one or more files, so that a user fixes them all in one pass."""

    def __init__(self, errors: list[SourceError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.location.file, e.location.line, e.location.column))
        super().__init__("\n".join(str(e) for e in self.errors))


class EnvironmentUnreachable(DrillError):
    """The environment's APIs could not be reached; nothing was touched."""


class LabError(DrillError):
    """A lab could not be started, or stopped while in use."""


class FaultError(DrillError):
    """A fault could not be applied or reverted. ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)
