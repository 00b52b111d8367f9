"""docs/scenario-reference.md is what the committed schema gives: it cannot go stale."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from drills.scenario.reference import MARKER, render_page, render_reference

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "scenario-reference.md"
SCHEMA = json.loads((ROOT / "scenarios" / "schema.json").read_text(encoding="utf-8"))


def test_the_committed_reference_is_current() -> None:
    committed = PAGE.read_text(encoding="utf-8")
    assert committed == render_page(committed, SCHEMA), "stale: run scripts/scenario-reference"


def test_every_fault_and_probe_kind_and_top_level_key_has_its_place() -> None:
    generated = render_reference(SCHEMA)
    faults = SCHEMA["$defs"]["faultStep"]["properties"]["fault"]["enum"]
    probes = SCHEMA["$defs"]["probe"]["properties"]["kind"]["enum"]
    for kind in [*faults, *probes]:
        assert f"\n### {kind}\n" in generated
    for key in SCHEMA["properties"]:
        assert f"| `{key}` |" in generated
    # A fault's own parameter, with its default in the schema's unit.
    assert "| `timeout` | duration |  | `300s` |" in generated


def test_the_hand_written_introduction_is_kept() -> None:
    page = render_page("# Title\n\nWritten by hand.\n\n" + MARKER + "\n\nold tables\n", SCHEMA)
    assert page.startswith("# Title\n\nWritten by hand.\n\n" + MARKER + "\n\n## Top-level keys\n")
    assert "old tables" not in page


def test_a_nullable_type_says_so_beside_its_other_types() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"].update({
        "window": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
        "nothing": {"anyOf": [{"type": "null"}]}})
    generated = render_reference(schema)
    assert "| `window` | string or number (or null) |" in generated
    assert "| `nothing` | null |" in generated
