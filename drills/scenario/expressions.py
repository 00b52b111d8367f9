"""The expression language of ``expect``, ``guards`` and condition waits.

One form, ``<probe>.<name>[.<key>] <op> <value>``, with ``op`` one of ``== != < <= > >=`` and
``value`` a duration (``3m``), a percentage (``80%``), a number (``3``, ``0.5``) or a bare name
(``eu``); a guard adds `` for <duration>``::

    dns.failover_time < 3m          an expectation on a metric
    web_eu.ready.zone-2 >= 1        a breakdown: the key follows the name
    dns.answer == eu                a wait condition on a signal
    users.error_rate > 80% for 8m   a guard

Parsing knows nothing of probes; :func:`resolve` then checks a parsed subject against the names a
probe kind declares (``METRICS`` or ``SIGNALS``, where ``name.*`` takes a key). Every problem is an
:class:`ExpressionError` carrying the character offset it is about, so that the loader can point at
the exact column inside the file's line.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence

from drills.scenario.model import MAX_TIMING_S, OPERATORS, Comparison, Guard
from drills.units import parse_duration, parse_percent, shown

_OPERATOR = re.compile("|".join(re.escape(op) for op in OPERATORS))
_PROBE = re.compile(r"[a-z][a-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_FOR = re.compile(r"\s+for\s+")
_DURATION = re.compile(r"\d+(?:\.\d+)?\s*(?:ms|s|m|h)")
_PERCENT = re.compile(r"\d+(?:\.\d+)?\s*%")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_EXAMPLE = "like 'dns.failover_time < 3m'"


class ExpressionError(ValueError):
    """A problem in an expression, ``offset`` characters into its text."""

    def __init__(self, message: str, *, offset: int = 0, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


def parse_comparison(text: str) -> Comparison:
    """Parse an expectation or a wait condition. Raises :class:`ExpressionError`."""
    comparison, rest = _parse(text)
    if rest is not None:
        raise ExpressionError("'for <duration>' applies only to guards",
                              offset=text.rindex("for", 0, rest))
    return comparison


def parse_guard(text: str) -> Guard:
    """Parse a guard: a comparison, optionally `` for <duration>`` (0 s: trips at the first sample)."""
    comparison, rest = _parse(text)
    for_seconds = 0.0
    if rest is not None:
        word = text[rest:].strip()
        try:
            for_seconds = parse_duration(word)
        except ValueError as exc:
            raise ExpressionError(str(exc), offset=rest) from exc
        if for_seconds > MAX_TIMING_S:
            raise ExpressionError(f"a guard's window is at most {MAX_TIMING_S / 3600:g}h, not "
                                  f"{shown(word)}", offset=rest)
    return Guard(condition=comparison, for_seconds=for_seconds, text=text.strip())


def is_condition(text: str) -> bool:
    """Whether a ``wait:`` value is a condition (it has a comparison operator) rather than a duration."""
    return bool(_OPERATOR.search(text)) or "=" in text


def matches(name: str, names: Sequence[str]) -> bool:
    """Whether ``name`` is one of the declared ``names``, where ``x.*`` stands for ``x.<any key>``."""
    for declared in names:
        if declared.endswith(".*"):
            base = declared[:-2]
            if name.startswith(base + ".") and len(name) > len(base) + 1:
                return True
        elif name == declared:
            return True
    return False


def resolve(comparison: Comparison, kinds: Mapping[str, Sequence[str] | None], *, what: str) -> None:
    """Check that ``comparison`` names a known probe and one of its ``what`` (``metric``/``signal``).

    ``kinds`` maps each probe of the scenario to the names its kind declares, or None when the
    probe itself is invalid (then its names are not checked again). Raises :class:`ExpressionError`
    at the probe (offset of the subject) or at the name.
    """
    start = comparison.text.find(comparison.subject)
    start = max(start, 0)
    if comparison.probe not in kinds:
        known = sorted(kinds)
        raise ExpressionError(
            f"no probe named {comparison.probe!r} in this scenario", offset=start,
            hint=_closest(comparison.probe, known) or (f"probes: {', '.join(known)}" if known
                                                       else "declare it under 'probes:'"))
    names = kinds[comparison.probe]
    if names is None or matches(comparison.name, names):
        return
    shown = [n.replace(".*", ".<key>") for n in names]
    raise ExpressionError(
        f"probe {comparison.probe!r} has no {what} {comparison.name!r}",
        offset=start + len(comparison.probe) + 1,
        hint=_name_hint(comparison.name, names) or (f"its {what}s: {', '.join(shown)}" if shown
                                                    else f"it has no {what}s"))


def _parse(text: str) -> tuple[Comparison, int | None]:
    """The comparison in ``text`` and the offset of the word after ``for``, if there is one."""
    op_match = _OPERATOR.search(text)
    if op_match is None:
        equals = text.find("=")
        if equals >= 0:
            raise ExpressionError("'=' is not a comparison", offset=equals, hint="use '==' to compare")
        raise ExpressionError(f"expected a comparison {_EXAMPLE}", offset=len(text) - len(text.lstrip()))
    subject_start = len(text) - len(text.lstrip())
    subject = text[:op_match.start()].strip()
    if not subject:
        raise ExpressionError(f"expected <probe>.<name> before {op_match[0]!r} ({_EXAMPLE})",
                              offset=op_match.start())
    probe, dot, name = subject.partition(".")
    if not _PROBE.fullmatch(probe):
        raise ExpressionError(f"{probe!r} is not a probe name (lower-case letters, digits and '_')",
                              offset=subject_start)
    if not dot or not _NAME.fullmatch(name):
        raise ExpressionError(f"expected <probe>.<name> before {op_match[0]!r}, not {subject!r}",
                              offset=subject_start, hint=f"for example '{probe}.<name> {op_match[0]} ...'")

    rest_start = op_match.end()
    rest = text[rest_start:]
    for_offset: int | None = None
    end = len(text)
    for_match = _FOR.search(rest)
    if for_match is not None:
        for_offset = rest_start + for_match.end()
        end = rest_start + for_match.start()
        rest = rest[:for_match.start()]
    value_offset = rest_start + len(rest) - len(rest.lstrip())
    value, unit = _value(rest.strip(), op=op_match[0], offset=value_offset)
    comparison = Comparison(subject=subject, probe=probe, name=name, op=op_match[0], value=value,
                            unit=unit, text=text[:end].strip())
    return comparison, for_offset


def _value(word: str, *, op: str, offset: int) -> tuple[float | str, str | None]:
    if not word:
        raise ExpressionError(f"expected a value after {op!r}", offset=offset)
    try:
        if _DURATION.fullmatch(word):
            return parse_duration(word), "s"
        if _PERCENT.fullmatch(word) or word.endswith("%"):
            return parse_percent(word), "%"
    except ValueError as exc:
        raise ExpressionError(str(exc), offset=offset) from exc
    if _NUMBER.fullmatch(word):
        number = float(word)
        if not math.isfinite(number):
            raise ExpressionError(f"the number {shown(word)} is too large", offset=offset)
        return number, None
    if _BARE.fullmatch(word):
        if op not in ("==", "!="):
            raise ExpressionError(f"{op!r} compares numbers; a name like {word!r} takes == or !=",
                                  offset=offset)
        return word, None
    raise ExpressionError(
        f"expected a duration (3m), a percentage (80%), a number or a name after {op!r}, not {word!r}",
        offset=offset)


def _closest(name: str, choices: Sequence[str]) -> str | None:
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else None


def _name_hint(name: str, names: Sequence[str]) -> str | None:
    plain = [n for n in names if not n.endswith(".*")]
    keyed = [n[:-2] for n in names if n.endswith(".*")]
    base, dot, key = name.partition(".")
    if dot:
        # 'failovr_time.eu': the key is probably right, the name misspelt.
        match = difflib.get_close_matches(base, keyed, n=1, cutoff=0.6)
        if match:
            return f"did you mean '{match[0]}.{key}'?"
    match = difflib.get_close_matches(name, plain, n=1, cutoff=0.6)
    if match:
        return f"did you mean {match[0]!r}?"
    match = difflib.get_close_matches(name, keyed, n=1, cutoff=0.6)
    if match:
        return f"{match[0]!r} takes a key: '{match[0]}.<key>'"
    return None
