"""YAML files that remember where every value came from.

Scenario, topology and environment files are read as YAML 1.2 (so ``no`` and ``on`` stay strings)
with the line and column of every node kept, so that each problem found later, by a pydantic model
or by a cross-check, is reported as ``file:line:col: message`` pointing into the user's file.

Reading is bounded, since a file may come from anyone: only a regular file is opened (a FIFO, a
device or a directory is refused from its ``stat``, before any read), at most :data:`MAX_FILE_BYTES`
are read, values nest at most :data:`MAX_DEPTH` deep, and a file holds at most :data:`MAX_VALUES`
values with every alias counted as the values it repeats (so that a "billion laughs" file is refused
after a few thousand values, not expanded). Explicit tags (``!!int x``, ``!custom``) are refused:
drill's formats need none, and they build values no check expects. Each refusal is a
:class:`SourceError` at its place.

Shared by the runner side and the lab: it knows YAML and source places, nothing of either.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, StreamMark
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError

from drills.errors import SourceError, SourceErrors, SourceLocation

PathPart = str | int

MAX_FILE_BYTES = 256 * 1024
"""The largest scenario, topology or environment file read: a hundred times the largest shipped one,
and small enough that parsing it takes seconds at most."""
MAX_DEPTH = 64
"""How deep values may nest (a mapping in a list in a mapping ...): far beyond any real file, well
within what parsing and checking handle without running out of stack."""
MAX_VALUES = 10_000
"""How many values (scalars, lists, mappings) a file may hold, each alias counted as every value it
repeats: about eighty times the largest shipped file (128), and a bound on the memory a file can take."""
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: its plain data and the means to point back into it."""

    file: str
    data: Any
    _root: Any
    text: str = ""
    """The text parsed, for messages that quote it."""

    def locate(self, path: Iterable[PathPart], *, key: bool = False) -> SourceLocation:
        """The place of the node at ``path``; with ``key``, of the mapping key naming it.

        A path that goes deeper than the file (a missing field) resolves to the deepest node that
        exists, which is where the user has to add it.
        """
        node = self._root
        line, col = 0, 0
        if isinstance(node, (CommentedMap, CommentedSeq)) and node.lc.line is not None:
            line, col = node.lc.line, node.lc.col  # a document's own place, after a "---"
        parts = list(path)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, CommentedMap):
                # The plain data names every key as text; the file may have written it as a number,
                # a truth or null.
                part = next((k for k in node if k == part or str(k) == part), part)
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
    """Read a YAML 1.2 file, keeping source places. Raises :class:`SourceError` on bad syntax and
    on a file that is not a regular file or is beyond the limits above."""
    file = str(path)
    return loads(_text(file), file=file)


def load_all(path: str | Path) -> list[Document]:
    """Read every document of a YAML 1.2 file (``---`` separated, as Kubernetes manifests are), each
    keeping source places; empty documents are left out. The limits hold for the file as a whole."""
    file = str(path)
    yaml = _parser()
    text = _text(file)
    roots = _parsed(lambda: list(yaml.load_all(text)), text, file)
    return [Document(file=file, data=_plain(root), _root=root, text=text)
            for root in roots if root is not None]


def _text(file: str) -> str:
    """The UTF-8 text of the regular file ``file``, within the size limit."""
    data = _read(file)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A binary file, or text in another encoding: point at the first byte that is not UTF-8.
        before = exc.object[:exc.start]
        line_start = before.rfind(b"\n") + 1
        line, col = before.count(b"\n") + 1, len(before[line_start:].decode("utf-8", "replace")) + 1
        raise SourceError(SourceLocation(file, line, col),
                          f"not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                          hint="YAML files are UTF-8 text") from exc
    return text


def _read(file: str) -> bytes:
    """The bytes of the regular file ``file``, at most :data:`MAX_FILE_BYTES` of them."""
    at = SourceLocation(file, 1, 1)
    try:
        # stat first: opening a FIFO would wait for a writer, and a device may do anything when opened.
        _check_regular(os.stat(file), at)
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(at, f"cannot read the file: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as stream:
        _check_regular(os.fstat(fd), at)  # the path may have been replaced since the stat
        try:
            data = stream.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise SourceError(at, f"cannot read the file: {exc.strerror}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise SourceError(at, f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, drill's limit for "
                          "scenario, topology and environment files",
                          hint="is this the file you meant? such files are a few KiB")
    return data


def _check_regular(info: os.stat_result, at: SourceLocation) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "a special file")
        raise SourceError(at, f"cannot read the file: it is {kind}, not a regular file",
                          hint="give the path of a YAML file")


def loads(text: str, *, file: str = "<string>") -> Document:
    """Parse YAML 1.2 text, keeping source places. Raises :class:`SourceError` on bad syntax."""
    yaml = _parser()
    root = _parsed(lambda: yaml.load(text), text, file)
    return Document(file=file, data=_plain(root), _root=root, text=text)


def _parser() -> YAML:
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _Constructor
    return yaml


def _parsed(parse: Callable[[], Any], text: str, file: str) -> Any:
    """What ``parse`` returns; its YAML errors as :class:`SourceError` at their place in ``file``."""
    try:
        return parse()
    except _Beyond as exc:
        raise SourceError(SourceLocation(file, exc.mark.line + 1, exc.mark.column + 1), exc.message,
                          hint=exc.hint) from exc
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


class _Beyond(Exception):
    """A file beyond one of the limits, at the place where it went beyond."""

    def __init__(self, mark: StreamMark, message: str, hint: str) -> None:
        super().__init__(message)
        self.mark, self.message, self.hint = mark, message, hint


class _BoundedComposer(Composer):
    """ruamel's composer, counting values and depth as it builds the node graph, so that a file
    beyond :data:`MAX_DEPTH` or :data:`MAX_VALUES` is refused before its values are all read."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._values = 0
        self._nesting = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._alias(target, event.start_mark)
            return super().compose_node(parent, index)
        tag = getattr(event, "ctag", None)
        if tag is not None and str(tag) != "!":
            raise _Beyond(event.start_mark, f"the YAML tag {_tag_name(tag)} is not used in drill files",
                          "write the value without it")
        if self._nesting >= MAX_DEPTH:
            raise _Beyond(event.start_mark, f"values nest more than {MAX_DEPTH} deep here",
                          f"drill reads files whose values nest at most {MAX_DEPTH} deep")
        self._add(1, event.start_mark)
        self._nesting += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def _alias(self, target: Node, mark: StreamMark) -> None:
        if isinstance(target, (MappingNode, SequenceNode)) and target.end_mark is None:
            raise _Beyond(mark, f"the alias *{target.anchor} is inside the value it names",
                          "an alias repeats a value defined before it, not one that contains it")
        self._add(self._size(target), mark)

    def _add(self, count: int, mark: StreamMark) -> None:
        self._values += count
        if self._values > MAX_VALUES:
            raise _Beyond(mark, f"the file holds more than {MAX_VALUES:,} values here (each alias counts as "
                          "the values it repeats)", "drill's limit for scenario, topology and environment "
                          "files; such files hold a few hundred")

    def _size(self, node: Node) -> int:
        """How many values ``node`` holds, itself included, each alias expanded."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            size = 1 + sum(self._size(item) for item in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return size


def _tag_name(tag: Any) -> str:
    text = str(tag)
    return "!!" + text.removeprefix("tag:yaml.org,2002:") if text.startswith("tag:yaml.org,2002:") else text


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor with YAML 1.2's core schema: no timestamps (``2020-13-45`` is
    text, as a version is, not a date that fails to be built)."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def validation_errors(doc: Document, exc: ValidationError, *, prefix: Iterable[PathPart] = (),
                      vocabulary: Iterable[str] = ()) -> SourceErrors:
    """Translate a pydantic error into one :class:`SourceError` per problem, at its place.

    ``vocabulary`` is every name the format knows; an unknown key gets the closest one as its hint.
    """
    words = sorted(set(vocabulary))
    errors: list[SourceError] = []
    for err in exc.errors():
        loc = _error_path(doc.data, [*prefix], err["loc"])
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


def _error_path(data: Any, prefix: list[PathPart], loc: Iterable[PathPart]) -> list[PathPart]:
    """``prefix`` and a pydantic error's ``loc`` as a path into ``data``: the names pydantic inserts
    into union paths dropped, a key of the file kept whatever it looks like."""
    node: Any = data
    for part in prefix:
        node = _child(node, part)
    path = list(prefix)
    for part in loc:
        child = _child(node, part)
        if child is _ABSENT and _is_union_tag(part):
            continue
        path.append(part)
        node = child
    return path


_ABSENT = object()


def _child(node: Any, part: PathPart) -> Any:
    if isinstance(node, dict) and isinstance(part, str) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def _is_union_tag(part: PathPart) -> bool:
    # pydantic inserts the member's name ("function-after[...]", a model name) into union paths.
    return isinstance(part, str) and ("[" in part or part[:1].isupper())


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""
