"""The scenario reference (``docs/scenario-reference.md``), generated from the scenario schema.

The reference is the committed schema (``scenarios/schema.json``, itself generated from the loader's
models and the installed plugins by :mod:`drills.scenario.schema`) as a person reads it: the top-level
keys, the step kinds, every fault's and probe's parameters with their types and defaults, and the
formats of durations and expressions. The page's hand-written introduction is everything above
:data:`MARKER`; ``scripts/scenario-reference`` keeps it and rewrites what follows, and a test fails
when the committed page differs from what the schema gives.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from drills.scenario.schema import DEFAULT_PATH as SCHEMA_PATH
from drills.scenario.schema import JSONSchema

DEFAULT_PATH = Path("docs/scenario-reference.md")
MARKER = ("<!-- Generated from scenarios/schema.json by scripts/scenario-reference: "
          "edit above this line only. -->")
"""The line after which the page is generated."""

_DURATION_HINT = "(ms|s|m|h)"
"""Part of the pattern of every duration in the schema: such strings are shown as ``duration``."""


def render_reference(schema: JSONSchema) -> str:
    """The generated part of the page (what follows :data:`MARKER`)."""
    defs: JSONSchema = schema["$defs"]
    parts = [
        "## Top-level keys",
        _description(schema),
        _properties_table(schema, defs),
        "## Steps",
        "Each item of `steps` (and of a `parallel` list) is one of these, told apart by its first key.",
    ]
    for kind in ("faultStep", "waitStep", "parallelStep", "undoStep"):
        body = defs[kind]
        parts += [f"### {kind.removesuffix('Step')}", _description(body)]
        if kind != "faultStep":
            parts.append(_properties_table(body, defs))
    parts += ["## Faults", "A fault step's `fault:` names one of these; its parameters sit beside it."]
    parts += _dispatched(defs, "fault.", tag="fault")
    parts += ["## Probes", "Each entry of `probes:` is named by the scenario (the name expressions use) and "
                           "has a `kind:`, one of these, with its parameters beside it."]
    parts += _dispatched(defs, "probe.", tag="kind")
    parts += ["## Value formats", "Strings with a form of their own, named in the tables above.",
              _formats(defs)]
    return "\n\n".join(p for p in parts if p) + "\n"


def render_page(current: str, schema: JSONSchema) -> str:
    """The whole page: ``current``'s hand-written part up to :data:`MARKER`, then the reference."""
    intro = current.split(MARKER, 1)[0].rstrip("\n")
    return f"{intro}\n\n{MARKER}\n\n{render_reference(schema)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated part of the page from the committed schema."""
    parser = argparse.ArgumentParser(prog="scripts/scenario-reference", description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH, help=f"default {SCHEMA_PATH}")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help=f"default {DEFAULT_PATH}")
    args = parser.parse_args(argv)
    schema = json.loads(args.schema.read_text(encoding="utf-8"))
    current = args.path.read_text(encoding="utf-8") if args.path.exists() else "# Scenario reference\n"
    args.path.write_text(render_page(current, schema), encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


def _dispatched(defs: JSONSchema, prefix: str, *, tag: str) -> list[str]:
    """A section per fault or probe kind: its summary, then its parameters and nested objects."""
    parts: list[str] = []
    kinds = sorted(k for k in defs if k.startswith(prefix) and k.count(".") == 1)
    for key in kinds:
        body = defs[key]
        parts += [f"### {key.removeprefix(prefix)}", _description(body),
                  _properties_table(body, defs, tag=tag)]
        for nested in sorted(k for k in defs if k.startswith(f"{key}.")):
            parts += [f"#### {nested.removeprefix(key + '.')} (in {key.removeprefix(prefix)})",
                      _description(defs[nested]), _properties_table(defs[nested], defs)]
    return parts


def _properties_table(body: JSONSchema, defs: JSONSchema, *, tag: str = "") -> str:
    properties: JSONSchema = body.get("properties", {})
    if not properties:
        return ""
    required = set(body.get("required", []))
    rows = ["| key | type | required | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, prop in properties.items():
        if name == tag:
            continue  # the dispatching key (`fault: drain-nodes`): the section's title says it
        rows.append(f"| `{name}` | {_type(prop)} | {'yes' if name in required else ''} | "
                    f"{_default(prop)} | {_cell(_meaning(prop, defs))} |")
    return "\n".join(rows)


def _type(prop: JSONSchema) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[1]
        return f"[{_ref_title(name)}](#{_anchor(_ref_title(name))})"
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in prop:
            choices = [_type(p) for p in prop[combinator] if p.get("type") != "null"]
            nullable = any(p.get("type") == "null" for p in prop[combinator])
            if not choices:
                return "null"
            return " or ".join(choices) + (" (or null)" if nullable else "")
    kind = prop.get("type")
    if kind == "string" and _DURATION_HINT in prop.get("pattern", ""):
        return "duration"
    if kind == "array":
        items = prop.get("items", {})
        return f"list of {_type(items)}" if items else "list"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map of {_type(prop['additionalProperties'])}"
    text = str(kind) if kind else "any"
    bounds = [f"{word} {prop[key]}" for key, word in (("minimum", "≥"), ("maximum", "≤")) if key in prop]
    if bounds:
        text += f" ({', '.join(bounds)})"
    return text


def _ref_title(name: str) -> str:
    """The heading a ``$ref`` target is described under."""
    if name.endswith("Step"):
        return name.removesuffix("Step")
    if name == "probe":
        return "Probes"
    if name == "step":
        return "Steps"
    return name


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, spaces to '-', punctuation dropped."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _default(prop: JSONSchema) -> str:
    if "default" not in prop or prop["default"] is None:
        return ""
    value = prop["default"]
    if _type(prop) == "duration" and isinstance(value, int | float):
        return f"`{value:g}s`"
    return f"`{json.dumps(value)}`"


def _meaning(prop: JSONSchema, defs: JSONSchema) -> str:
    text = _description(prop)
    if not text and "$ref" in prop:
        text = _description(defs.get(prop["$ref"].rsplit("/", 1)[1], {}))
    return text


def _description(body: JSONSchema) -> str:
    """A schema description as Markdown on one line: reStructuredText's double backquotes made single,
    and ``<`` outside code escaped so that ``<probe>`` is not taken for an HTML tag."""
    text = " ".join(str(body.get("description", "")).replace("``", "`").split())
    pieces = text.split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(pieces))


def _formats(defs: JSONSchema) -> str:
    parts = []
    for name in ("duration", "timing", "percentage", "expectation", "condition", "guard", "stepId"):
        body = defs[name]
        parts.append(f"### {name}\n\n{_description(body)} Pattern: `{body.get('pattern', '')}`")
    return "\n\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
