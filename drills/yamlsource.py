"""YAML files that remember where every value came from.

Scenario, topology and environment files are read as YAML 1.2 (so ``no`` and ``on`` stay strings)
with the line and column of every node kept, so that each problem found later, by a pydantic model
or by a cross-check, is reported as ``file:line:col: message`` pointing into the user's file.

Shared by the runner side and the lab: it knows YAML and source places, nothing of either.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError

from drills.errors import SourceError, SourceErrors, SourceLocation

PathPart = str | int


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: its plain data and the means to point back into it."""

    file: str
    data: Any
    _root: Any

    def locate(self, path: Iterable[PathPart], *, key: bool = False) -> SourceLocation:
        """The place of the node at ``path``; with ``key``, of the mapping key naming it.

        A path that goes deeper than the file (a missing field) resolves to the deepest node that
        exists, which is where the user has to add it.
        """
        node = self._root
        line, col = 0, 0
        parts = list(path)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, CommentedMap) and part in node:
                kline, kcol = node.lc.key(part)
                if last and key:
                    return SourceLocation(self.file, kline + 1, kcol + 1)
                child = node[part]
                if isinstance(child, (CommentedMap, CommentedSeq)) and child.lc.line is not None:
                    line, col = child.lc.line, child.lc.col
                else:
                    vline, vcol = node.lc.value(part)
                    line, col = (vline, vcol) if vline is not None else (kline, kcol)
                node = child
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                if isinstance(node, (CommentedMap, CommentedSeq)) and node.lc.line is not None:
                    line, col = node.lc.line, node.lc.col
                break
        return SourceLocation(self.file, line + 1, col + 1)

    def error(self, path: Iterable[PathPart], message: str, *, hint: str | None = None,
              key: bool = False) -> SourceError:
        """A :class:`SourceError` pointing at ``path``."""
        return SourceError(self.locate(path, key=key), message, hint=hint)


def load(path: str | Path) -> Document:
    """Read a YAML 1.2 file, keeping source places. Raises :class:`SourceError` on bad syntax."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(SourceLocation(file, 1, 1), f"cannot read the file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        # A binary file, or text in another encoding: point at the first byte that is not UTF-8.
        before = exc.object[:exc.start]
        line_start = before.rfind(b"\n") + 1
        line, col = before.count(b"\n") + 1, len(before[line_start:].decode("utf-8")) + 1
        raise SourceError(SourceLocation(file, line, col),
                          f"not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                          hint="YAML files are UTF-8 text") from exc
    return loads(text, file=file)


def loads(text: str, *, file: str = "<string>") -> Document:
    """Parse YAML 1.2 text, keeping source places. Raises :class:`SourceError` on bad syntax."""
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    try:
        root = yaml.load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        raise SourceError(SourceLocation(file, mark.line + 1, mark.column + 1),
                          f"duplicate key: {_first_line(exc.problem)}",
                          hint="each key may appear once in a mapping") from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SourceError(SourceLocation(file, line, col), f"YAML syntax error: {problem}") from exc
    except ReaderError as exc:
        # A character YAML forbids (NUL, most control characters): at its place in the text.
        before = text[:exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise SourceError(SourceLocation(file, line, col),
                          f"YAML syntax error: the character U+{code:04X} is not allowed in YAML",
                          hint="is this a text file?") from exc
    return Document(file=file, data=_plain(root), _root=root)


def validation_errors(doc: Document, exc: ValidationError, *, prefix: Iterable[PathPart] = (),
                      vocabulary: Iterable[str] = ()) -> SourceErrors:
    """Translate a pydantic error into one :class:`SourceError` per problem, at its place.

    ``vocabulary`` is every name the format knows; an unknown key gets the closest one as its hint.
    """
    words = sorted(set(vocabulary))
    errors: list[SourceError] = []
    for err in exc.errors():
        loc = [*prefix, *(p for p in err["loc"] if not _is_union_tag(p))]
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            errors.append(doc.error(loc, f"unknown key {name!r}", hint=suggest(name, words), key=True))
        elif kind == "missing":
            errors.append(doc.error(loc[:-1], f"missing required key {str(loc[-1])!r}"))
        else:
            errors.append(doc.error(loc, _clean(err["msg"])))
    return SourceErrors(errors)


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """'did you mean X?' for the closest of ``choices``, if any is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else None


def field_names(model: type[BaseModel]) -> set[str]:
    """Every key (by alias) that ``model`` and the models nested in it accept."""
    names: set[str] = set()
    seen: set[type] = set()

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for fname, field in tp.model_fields.items():
                names.add(field.alias or fname)
                walk(field.annotation)
        for arg in getattr(tp, "__args__", ()) or ():
            walk(arg)

    walk(model)
    return names


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _is_union_tag(part: PathPart) -> bool:
    # pydantic inserts the member's name ("function-after[...]", a model name) into union paths.
    return isinstance(part, str) and ("[" in part or part[:1].isupper())


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""
