"""Durations and percentages as people write them: ``500ms``, ``90s``, ``5m``, ``1h``, ``95%``.

Neutral ground: the scenario format and the lab's topology files both use it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``. A bare number is not accepted: the unit is what makes a file readable.

    Raises ValueError with what was expected.
    """
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"expected a duration with a unit like 500ms, 90s, 5m or 1h, not {text!r}")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration like 500ms, 90s, 5m or 1h, not {text!r}")
    return float(m[1]) * _SECONDS[m[2]]


def parse_percent(text: str | int | float) -> float:
    """The number in ``95%`` (0-100). Raises ValueError."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"expected a percentage like 95%, not {text!r}")
    m = _PERCENT.match(text)
    if not m or float(m[1]) > 100:
        raise ValueError(f"expected a percentage between 0% and 100%, not {text!r}")
    return float(m[1])


Duration = Annotated[float, BeforeValidator(parse_duration),
                     PlainSerializer(lambda s: f"{s:g}s"),
                     WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)$"})]
"""A pydantic field written as a duration with its unit (``30s``, ``5m``), held as seconds."""

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
