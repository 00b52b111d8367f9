"""Reading a field whose value may have any shape: objects put straight into the store (by the lab's own
code, a test, an older lab) never passed validation, and a controller or the ingress must not stop on
one of them. Each reader answers the value when it has the expected type, else an empty or default one.
"""

from __future__ import annotations

from typing import Any


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def entries(value: Any) -> list[dict[str, Any]]:
    """The objects among ``value``'s items if it is a list (others skipped), else none."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def count(value: Any, default: int) -> int:
    """``value`` if it is an integer (not a boolean), else ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default
