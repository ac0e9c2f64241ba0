"""A strict, safe YAML reader that remembers the line of every key.

Only plain YAML values are accepted (maps, lists, strings, numbers, booleans, null): any other
tag, such as ``!!python/object/apply``, is reported and nothing in it is constructed. Duplicate
keys are errors. Aliases and merge keys work, but a document whose aliases expand it by more
than ``MAX_NODES`` nodes ("billion laughs") is rejected before anything is expanded; a big
document written out in full (5,000 health checks) is not. A NUL or other
unprintable character, and nesting deeper than the composer's recursion allows, are problems
with a line, never an exception.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any
else:  # without the dataclasses module (every start with a config file, issue 21)
    from reliactl._records import dataclass, field

MAX_NODES = 20_000  # values aliases may add on top of those written out (a big file is fine)
MAX_DEPTH = 100  # reported where a document nests deeper than Python's stack allows
_ALLOWED_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

Path = tuple[str | int, ...]


@dataclass(frozen=False)
class YamlDocument:
    """The parsed data, the line of each key path, and problems as (line, path, message)."""

    data: Any = None
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[tuple[int | None, Path, str]] = field(default_factory=list)


class _TooBig(Exception):
    pass


def _written_nodes(root: Node) -> int:
    """How many distinct nodes the document holds (an alias refers to one, adds none)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for k, v in node.value:
                stack.extend((k, v))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return len(seen)


def _expanded_size(node: Node, memo: dict[int, int], active: set[int], limit: int) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise _TooBig("the document refers to itself through an alias")
    active.add(key)
    size = 1
    if isinstance(node, MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, active, limit) + _expanded_size(v, memo, active, limit)
            if size > limit:
                break
    elif isinstance(node, SequenceNode):
        for item in node.value:
            size += _expanded_size(item, memo, active, limit)
            if size > limit:
                break
    active.discard(key)
    if size > limit:
        raise _TooBig(
            f"aliases expand the document by more than {MAX_NODES} values (an alias bomb?); refused"
        )
    memo[key] = size
    return size


def _describe_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def parse(text: str) -> YamlDocument:
    """Parse ``text``; never raises for bad input, problems are returned in the document."""
    doc = YamlDocument()
    try:
        loader = yaml.SafeLoader(text)  # checks every character: a NUL is refused here
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        doc.problems.append((at, (), f"invalid YAML: {_reader_problem(exc)}"))
        return doc
    fast = _c_loader(text)  # libyaml: ~15x faster on a big file (5,000 health checks)
    if fast is not None:
        loader.dispose()
        loader = fast
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            doc.problems.append(_too_deep(text))
            return doc
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            doc.problems.append((line, (), f"invalid YAML: {exc.problem or exc.context}"))
            return doc
        except yaml.YAMLError as exc:
            doc.problems.append((None, (), f"invalid YAML: {exc}"))
            return doc
        if node is None:
            doc.data = None
            return doc
        try:
            if "*" in text:  # no "*": no alias, so nothing can expand (a big file skips the walks)
                _expanded_size(node, {}, set(), MAX_NODES + _written_nodes(node))
            doc.data = _walk(loader, node, (), doc)
        except _TooBig as exc:
            doc.problems.append((node.start_mark.line + 1, (), str(exc)))
        except RecursionError:
            doc.problems.append(_too_deep(text))
            doc.data = None
        return doc
    finally:
        loader.dispose()


_DEPTH_STEP = {
    yaml.MappingStartEvent: 1,
    yaml.SequenceStartEvent: 1,
    yaml.MappingEndEvent: -1,
    yaml.SequenceEndEvent: -1,
}


def _c_loader(text: str) -> Any:
    """A libyaml loader for ``text`` when libyaml is there and the text parses cleanly within
    MAX_DEPTH; else None, and the pure-Python loader reports what is wrong (its messages,
    lines and its recursion guard are what the tests pin: libyaml's composer would recurse in
    C without a limit)."""
    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is None:
        return None
    depth = 0
    try:
        for event in yaml.parse(text, Loader=c_loader):
            step = _DEPTH_STEP.get(type(event))
            if step is not None:
                depth += step
                if depth > MAX_DEPTH:
                    return None
    except yaml.YAMLError:
        return None
    return c_loader(text)


def _reader_problem(exc: yaml.reader.ReaderError) -> str:
    char = exc.character
    code = ord(char) if isinstance(char, str) else char
    return f"unacceptable character #x{code:04x} (a NUL or other control character)"


def _too_deep(text: str) -> tuple[int | None, Path, str]:
    """Where the document nests deeper than MAX_DEPTH, found without recursion (events)."""
    depth = 0
    line: int | None = None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    line = mark.line + 1 if mark is not None else None
                    break
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass
    return line, (), f"the document nests more than {MAX_DEPTH} levels deep; refused"


def _walk(loader: yaml.SafeLoader, node: Node, path: Path, doc: YamlDocument) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        if node.tag != _MAP_TAG:
            doc.problems.append((line, path, f"unsupported YAML tag {_describe_tag(node.tag)}"))
            return None
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                continue
            if isinstance(key_node, ScalarNode) and key_node.tag in _ALLOWED_SCALAR_TAGS:
                key = key_node.value
                key_line = key_node.start_mark.line + 1
                if key in seen:
                    doc.problems.append(
                        (key_line, (*path, key), f"duplicate key (first set on line {seen[key]})")
                    )
                else:
                    seen[key] = key_line
        try:
            loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            doc.problems.append((line, path, f"invalid merge key: {exc.problem}"))
            return None
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _ALLOWED_SCALAR_TAGS:
                doc.problems.append((key_line, path, "a key must be a plain string"))
                continue
            key = str(key_node.value)
            child = (*path, key)
            doc.lines.setdefault(child, key_line)
            result[key] = _walk(loader, value_node, child, doc)
        return result
    if isinstance(node, SequenceNode):
        if node.tag != _SEQ_TAG:
            doc.problems.append((line, path, f"unsupported YAML tag {_describe_tag(node.tag)}"))
            return None
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.lines.setdefault(child, item.start_mark.line + 1)
            items.append(_walk(loader, item, child, doc))
        return items
    assert isinstance(node, ScalarNode)
    if node.tag not in _ALLOWED_SCALAR_TAGS:
        doc.problems.append(
            (
                line,
                path,
                f"unsupported YAML tag {_describe_tag(node.tag)} (only plain values are allowed;"
                " nothing was executed)",
            )
        )
        return None
    try:
        # The tag's constructor directly: construct_object's bookkeeping (memo, recursion
        # guard) is for collections, and a scalar is ~60% of a big file's values.
        return loader.yaml_constructors[node.tag](loader, node)
    except (yaml.YAMLError, ValueError) as exc:
        doc.problems.append((line, path, f"invalid value {node.value!r}: {exc}"))
        return None


def parse_scalar(text: str) -> Any:
    """Resolve one environment-variable string as a YAML scalar ("5" -> 5, "true" -> True)."""
    if text.strip() == "":
        return text
    doc = parse(text)
    if doc.problems or isinstance(doc.data, (dict, list)):
        return text
    return doc.data
