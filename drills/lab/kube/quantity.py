"""Kubernetes resource quantities: ``500m``, ``2``, ``512Mi``, ``16Gi``, ``1.5``, ``1e3``.

A quantity is a number with an optional suffix: binary (``Ki`` ``Mi`` ``Gi`` ``Ti`` ``Pi`` ``Ei``),
decimal (``n`` ``u`` ``m`` ``k`` ``M`` ``G`` ``T`` ``P`` ``E``) or a decimal exponent (``e3``). CPU is
in cores (``500m`` = 0.5), memory in bytes.
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_FACTORS = {
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
}


def parse_quantity(text: str | int | float) -> float:
    """The value of a quantity in its base unit. Raises ValueError for anything else."""
    if isinstance(text, bool):
        raise ValueError(f"expected a quantity like 500m, 2 or 512Mi, not {text!r}")
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"expected a quantity like 500m, 2 or 512Mi, not {text!r}")
    number, suffix = float(match[1]), match[2]
    if suffix is None:
        return number
    if suffix[0] in "eE":
        return number * 10.0 ** int(suffix[1:])
    return number * _FACTORS[suffix]
