"""``{{ env.NAME }}`` references in a scenario's strings, and the way back to what was written.

References are substituted after parsing, on the plain data, so every node keeps its place in the
file. A string that held references remembers how it was rewritten (:class:`Rewrite`), so that a
problem found later at some offset of the substituted string is reported at the column of the file
where the user wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drills.yamlsource import PathPart, suggest

Where = tuple[PathPart, ...]
"""A node's path from the document root: keys and list indexes."""

_REFERENCE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_ENV_REFERENCE = re.compile(r"env\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Rewrite:
    """How one string was rewritten: ``raw`` as written, and each replaced reference's span as
    ``(new_start, new_end, raw_start, raw_end)``."""

    raw: str
    spans: tuple[tuple[int, int, int, int], ...]

    def raw_offset(self, offset: int) -> int:
        """The offset in :attr:`raw` of ``offset`` in the rewritten string (inside a replacement: its
        reference's start)."""
        delta = 0
        for new_start, new_end, raw_start, raw_end in self.spans:
            if offset < new_start:
                break
            if offset < new_end:
                return raw_start
            delta = raw_end - new_end
        return offset + delta


@dataclass(frozen=True)
class BadReference:
    """A reference that could not be resolved, ``offset`` characters into the string at ``where``."""

    where: Where
    raw: str
    offset: int
    message: str
    hint: str


@dataclass
class Substitution:
    """The outcome of :func:`substitute`."""

    data: Any
    rewrites: dict[Where, Rewrite] = field(default_factory=dict)
    problems: list[BadReference] = field(default_factory=list)


def substitute(data: Any, variables: Mapping[str, str]) -> Substitution:
    """``data`` with every ``{{ env.NAME }}`` in its string values replaced from ``variables``.

    A reference to an unknown variable, or of another form, stays as written and is a problem.
    """
    result = Substitution(data=None)
    result.data = _walk(data, (), variables, result)
    return result


def _walk(value: Any, where: Where, variables: Mapping[str, str], result: Substitution) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, (*where, k), variables, result) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*where, i), variables, result) for i, v in enumerate(value)]
    if not isinstance(value, str) or "{{" not in value:
        return value
    out: list[str] = []
    length = 0
    spans: list[tuple[int, int, int, int]] = []
    pos = 0
    for match in _REFERENCE.finditer(value):
        before = value[pos:match.start()]
        replacement = _resolve(match, value, where, variables, result)
        out += [before, replacement]
        length += len(before)
        spans.append((length, length + len(replacement), match.start(), match.end()))
        length += len(replacement)
        pos = match.end()
    out.append(value[pos:])
    result.rewrites[where] = Rewrite(raw=value, spans=tuple(spans))
    return "".join(out)


def _resolve(match: re.Match[str], raw: str, where: Where, variables: Mapping[str, str],
             result: Substitution) -> str:
    known = sorted(variables)
    listing = f"known: {', '.join('env.' + k for k in known)}" if known else "no variables are defined"
    env = _ENV_REFERENCE.fullmatch(match[1])
    if env is None:
        result.problems.append(BadReference(where, raw, match.start(), f"unknown reference {match[0]!r}",
                                            "references are {{ env.NAME }}; " + listing))
        return match[0]
    if env[1] not in variables:
        result.problems.append(BadReference(where, raw, match.start(),
                                            f"the environment has no variable {env[1]!r}",
                                            suggest(env[1], known) or listing))
        return match[0]
    return variables[env[1]]
