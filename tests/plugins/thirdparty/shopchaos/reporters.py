"""A one-screen text summary of a run for the shop's chat channel."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from reports.base import format_value
from reports.record import RunRecord


class ShopSummary:
    """``shop-summary.txt``: the verdict, then each metric as a person reads it."""

    filename: ClassVar[str] = "shop-summary.txt"

    def render(self, run: RunRecord, run_dir: Path | None = None) -> str:
        # run_dir defaults to None so that the summary also renders where drill passes only the record.
        reason = f" ({run['reason']})" if run["reason"] else ""
        lines = [f"{run['scenario']['name']}: {run['verdict']}{reason}"]
        lines += [f"  {name} = {format_value(m['value'], m['unit'], m['error'])}"
                  for name, m in sorted(run["metrics"].items())]
        return "\n".join(lines) + "\n"
