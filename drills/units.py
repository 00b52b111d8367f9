"""Durations and percentages as people write them: ``500ms``, ``90s``, ``5m``, ``1h``, ``95%``.

Neutral ground: the scenario format and the lab's topology files both use it. Every duration is
finite and at most :data:`MAX_DURATION_S`, so that no timer, clock or conversion to whole seconds
down the line overflows, whatever a file says.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")

MAX_DURATION_S = 100 * 365 * 86400.0
"""The longest duration anything takes: 100 years. Beyond any real setting (Traffic Manager's
largest TTL, 2^31-1 s, is 68 years), well within every timer and integer it becomes."""


class DurationTooLong(ValueError):
    """A duration written correctly but longer than the limit where it is used."""


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``. A bare number is not accepted: the unit is what makes a file readable.

    Raises ValueError with what was expected.
    """
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"expected a duration with a unit like 500ms, 90s, 5m or 1h, not {text!r}")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration like 500ms, 90s, 5m or 1h, not {shown(text)}")
    seconds = float(m[1]) * _SECONDS[m[2]]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise DurationTooLong(f"a duration is at most 100 years, not {shown(text)}")
    return seconds


def shown(text: str, *, limit: int = 40) -> str:
    """``text`` quoted for a message, shortened past ``limit`` characters (files may hold any length)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def parse_percent(text: str | int | float) -> float:
    """The number in ``95%`` (0-100). Raises ValueError."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"expected a percentage like 95%, not {text!r}")
    m = _PERCENT.match(text)
    if not m or float(m[1]) > 100:
        raise ValueError(f"expected a percentage between 0% and 100%, not {shown(text)}")
    return float(m[1])


Duration = Annotated[float, BeforeValidator(parse_duration),
                     PlainSerializer(lambda s: f"{s:g}s"),
                     WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)$",
                                     "description": "A duration with its unit (500ms, 90s, 5m, 1h), at most "
                                                    "100 years."})]
"""A pydantic field written as a duration with its unit (``30s``, ``5m``), held as seconds (at most
:data:`MAX_DURATION_S`)."""

Percent = Annotated[float, BeforeValidator(parse_percent), PlainSerializer(lambda p: f"{p:g}%"),
                    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?%$"})]
"""A pydantic field written as a percentage (``50%``), held as 0-100."""


def format_duration(seconds: float) -> str:
    """A short human form: ``850ms``, ``74.2s``, ``3m05s``, ``1h02m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m}m{s:02d}s"
    h, rest = divmod(round(seconds), 3600)
    return f"{h}h{rest // 60:02d}m"
