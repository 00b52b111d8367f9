"""The state and the shared checks of one pass over one scenario file.

:class:`FileChecker` collects every problem instead of stopping at the first, and knows how to point
at a place: a node (``file:line:col`` from the YAML), or a character inside a string such as an
expression, mapped back through any ``{{ env.NAME }}`` substitution to the column the user wrote.
It also holds what later parts are checked against: the installed plugins, the environment's
regions, and the signals and metrics of each probe declared so far.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from drills import plugins as _plugins
from drills.errors import SourceError, SourceLocation
from drills.scenario.expressions import ExpressionError, parse_comparison, parse_guard, resolve
from drills.scenario.model import MAX_TIMING_S, REGION_KEYS, Comparison, Guard
from drills.scenario.references import Rewrite, Where, substitute
from drills.units import parse_duration, shown
from drills.yamlsource import Document, field_names, suggest, validation_errors


@dataclass
class FileChecker:
    """One pass over one file, collecting every problem in :attr:`errors`."""

    doc: Document
    plugins: _plugins.Plugins
    regions: Collection[str] | None
    variables: Mapping[str, str]
    errors: list[SourceError] = field(default_factory=list)
    signals: dict[str, Sequence[str] | None] = field(default_factory=dict)
    """Each probe declared so far: its kind's signal names (None when its kind is unknown)."""
    metrics: dict[str, Sequence[str] | None] = field(default_factory=dict)
    """Each probe declared so far: its kind's metric names (None when its kind is unknown)."""
    _lines: list[str] = field(default_factory=list)
    _rewrites: dict[Where, Rewrite] = field(default_factory=dict)
    _unresolved: set[SourceLocation] = field(default_factory=set)
    _reference_errors: list[SourceError] = field(default_factory=list)

    def substituted(self) -> Any:
        """The document's data with ``{{ env.NAME }}`` substituted; unknown references are problems."""
        self._lines = self.doc.text.splitlines()
        substitution = substitute(self.doc.data, self.variables)
        self._rewrites = substitution.rewrites
        for bad in substitution.problems:
            problem = ExpressionError(bad.message, offset=bad.offset, hint=bad.hint)
            self.error_in(bad.where, problem, raw=bad.raw)
            self._reference_errors.append(self.errors[-1])
            self._unresolved.add(self.doc.locate(bad.where))
        return substitution.data

    def problems(self) -> list[SourceError]:
        """Every problem found, less those that only repeat an unresolved ``{{ env.NAME }}``: a value
        that still holds its reference is wrong for every later check, and saying so again is noise."""
        return [e for e in self.errors
                if e.location not in self._unresolved or any(e is r for r in self._reference_errors)]

    # expressions

    def comparison(self, path: Where, text: Any, *, what: str) -> Comparison | None:
        """The comparison at ``path``, naming a ``what`` (``metric``/``signal``) of a declared probe."""
        if not isinstance(text, str):
            self.error(path, f"expected an expression like 'dns.failover_time < 3m', not {type_name(text)}")
            return None
        try:
            comparison = parse_comparison(text)
            resolve(comparison, self.metrics if what == "metric" else self.signals, what=what)
        except ExpressionError as exc:
            self.error_in(path, exc)
            return None
        return comparison

    def guard(self, path: Where, text: Any, *, what: str) -> Guard | None:
        """The guard at ``path``; its condition names a ``what`` (a signal) of a declared probe."""
        if not isinstance(text, str):
            self.error(path, "expected a guard like 'users.error_rate > 80% for 2m', "
                       f"not {type_name(text)}")
            return None
        try:
            guard = parse_guard(text)
            resolve(guard.condition, self.signals, what=what)
        except ExpressionError as exc:
            self.error_in(path, exc)
            return None
        return guard

    # shared checks

    def registered(self, group: str, name: Any, path: Where, what: str, known: Mapping[str, Any]) -> Any:
        """The plugin class ``name`` of ``group`` (one of ``known``), or None after saying why not."""
        if not isinstance(name, str):
            self.error(path, f"{what} must be a name, not {type_name(name)}", hint=self.known(what, known))
            return None
        if name in known:
            return known[name]
        why = self.plugins.why_unavailable(group, name)
        if why is not None:
            self.error(path, f"{what} {name!r} is installed but cannot be used: {why}")
        else:
            self.error(path, f"unknown {what} {name!r}",
                       hint=suggest(name, known) or self.known(f"{what}s", known))
        return None

    def params(self, model: type[BaseModel], values: dict[str, Any], path: Where, *, what: str,
               extra_keys: Sequence[str]) -> BaseModel | None:
        """``values`` parsed by a plugin's ``model`` (``what`` names it in hints), errors mapped into
        the file under ``path``; a ``cluster`` or ``region`` must be one of the environment's regions."""
        try:
            params = model.model_validate(values)
        except ValidationError as exc:
            vocabulary = {*field_names(model), *extra_keys}
            keys = [field.alias or name for name, field in model.model_fields.items()] + list(extra_keys)
            takes = f"{what} takes {quoted(keys, word='and')}"
            for error in validation_errors(self.doc, exc, prefix=path, vocabulary=vocabulary).errors:
                if error.hint is None and error.message.startswith("unknown key"):
                    error = SourceError(error.location, error.message, hint=takes)
                self.errors.append(error)
            return None
        for key in REGION_KEYS:
            named = getattr(params, key, None)
            if self.regions is not None and isinstance(named, str) and named not in self.regions:
                regions = sorted(self.regions)
                self.error((*path, key), f"{key} {named!r} is not a region of this environment",
                           hint=suggest(named, regions) or f"its regions: {', '.join(regions)}")
                return None
        return params

    def duration(self, path: Where, value: Any, *, what: str, positive: bool) -> float | None:
        """Seconds in the duration at ``path`` (at most :data:`MAX_TIMING_S`), or None after saying what
        is wrong."""
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(path, f"{what}: {exc}")
            return None
        if positive and seconds <= 0:
            self.error(path, f"{what} must be longer than 0s, not {value!r}")
            return None
        if seconds > MAX_TIMING_S:
            self.error(path, f"{what} must be at most {MAX_TIMING_S / 3600:g}h, not {shown(value)}",
                       hint="a drill's steps last minutes to hours")
            return None
        return seconds

    def known(self, what: str, known: Mapping[str, Any]) -> str:
        """A hint listing the installed names."""
        return f"installed {what}: {', '.join(sorted(known))}" if known else f"no {what} are installed"

    # reporting

    def error(self, path: Where, message: str, *, hint: str | None = None, key: bool = False) -> None:
        """A problem at the node ``path`` (with ``key``: at the key naming it)."""
        self.errors.append(self.doc.error(path, message, hint=hint, key=key))

    def error_in(self, path: Where, exc: ExpressionError, *, raw: str | None = None) -> None:
        """An error ``exc.offset`` characters into the string at ``path``, at its column in the file.

        ``raw`` is the string as written when ``exc.offset`` counts in it; otherwise the offset counts
        in the substituted string and is mapped back through the substitution.
        """
        location = self.doc.locate(path)
        offset = exc.offset
        if raw is None:
            rewrite = self._rewrites.get(path)
            if rewrite is not None:
                raw, offset = rewrite.raw, rewrite.raw_offset(offset)
            else:
                raw = str(self._written(path))
        column = location.column
        if 0 < location.line <= len(self._lines):
            line = self._lines[location.line - 1]
            start = location.column - 1
            if line[start:start + 1] in ("'", '"'):
                start += 1
            # Only a scalar written on one line, unescaped, maps offsets to columns one to one;
            # anything else is reported at the start of the scalar.
            if line[start:start + offset] == raw[:offset]:
                column = start + offset + 1
        self.errors.append(SourceError(SourceLocation(location.file, location.line, column),
                                       exc.message, hint=exc.hint))

    def place(self, path: Where) -> str:
        """``line:col`` of the node at ``path``, for messages that point at a second place."""
        location = self.doc.locate(path)
        return f"{location.line}:{location.column}"

    def _written(self, path: Where) -> Any:
        value = self.doc.data
        for part in path:
            value = value[part]
        return value


def quoted(words: Sequence[str], *, word: str = "or") -> str:
    """``'a', 'b' or 'c'``."""
    items = [repr(w) for w in words]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def type_name(value: Any) -> str:
    """What a YAML value is, for a message: ``a mapping``, ``the text 'x'``, ``nothing``."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: f"the text {value!r}", bool: f"the truth {value}",
            int: f"the number {value}", float: f"the number {value}"}.get(type(value), type(value).__name__)
