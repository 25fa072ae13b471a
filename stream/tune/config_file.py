"""The tuned config file: the user's YAML with only the tuned keys changed.

PyYAML (the only YAML library installed) drops comments when it writes a file, so the file is
edited as text instead: each tuned key's value is replaced on its own line (its comment kept),
or the key is inserted under its section (the section added when missing). The edit is then
checked by parsing both files: the result must be exactly the user's data with the changes.
Where that cannot be done safely (a flow-style section, a value spread over several lines) the
whole file is written by PyYAML instead, comments lost, and the caller is told so.

Relative paths in a config are resolved against its own folder. The tuned file lives in the
output folder, so `rebase_paths` makes the model path, file sources and the SQLite store
absolute where they were relative (a `${VAR:-default}` keeps its variable; only a relative
default changes).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lanewatch.stream.tune.space import Path as KeyPath

_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- +)?(?P<key>[A-Za-z0-9_][\w .-]*?) *:"
                   r"(?P<rest>.*)$")
_VALUE = re.compile(r"^(?P<head> *(?:- +)?[^:#]+?: *)(?P<value>[^#]*?)(?P<tail> *(?:#.*)?)$")
_ENV_DEFAULT = re.compile(r"^\$\{(?P<name>[A-Za-z_]\w*):-(?P<default>[^}]*)\}(?P<rest>.*)$")


@dataclass(frozen=True)
class WrittenConfig:
    """The tuned file's text and how it was made."""

    text: str
    comments_kept: bool  # False: PyYAML wrote the whole file (see the module docstring)


def yaml_value(value: Any) -> str:
    """A value as one line of YAML (flow style for lists and mappings)."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def apply_to_data(data: Any, changes: Mapping[KeyPath, Any]) -> Any:
    """The parsed YAML with the changes (a value of None for a key under class_confidence or
    class_aliases removes that key)."""
    data = copy.deepcopy(data)
    for path, value in changes.items():
        *parents, last = path
        node = data
        for key in parents:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]
        if value is None and parents and parents[-1] in ("class_confidence", "class_aliases"):
            node.pop(last, None)
        else:
            node[last] = list(value) if isinstance(value, tuple) else value
    return data


class _Unsafe(Exception):
    """The text edit cannot be done safely: fall back to writing the whole file."""


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _column(line: str) -> int:
    """Where a line's key starts (after a list dash)."""
    m = _LINE.match(line)
    if m is None:
        return len(line) - len(line.lstrip(" "))
    return len(m["indent"]) + len(m["dash"] or "")


def _find(lines: list[str], lo: int, hi: int, column: int, key: str) -> int | None:
    for i in range(lo, hi):
        m = _LINE.match(lines[i])
        if m and _column(lines[i]) == column and m["key"] == key:
            return i
    return None


def _children(lines: list[str], parent: int, hi: int) -> tuple[int, int, int]:
    """(first line, end, column) of the block under the key at line `parent`."""
    end = hi
    own = _column(lines[parent])
    for i in range(parent + 1, hi):
        if _content(lines[i]) and len(lines[i]) - len(lines[i].lstrip(" ")) <= own:
            end = i
            break
    column = next((len(lines[i]) - len(lines[i].lstrip(" ")) for i in range(parent + 1, end)
                   if _content(lines[i])), own + 2)
    return parent + 1, end, column


def _list_item(lines: list[str], lo: int, hi: int, index: int) -> tuple[int, int, int]:
    """(first line, end, key column) of item `index` of the block list in lines lo..hi."""
    starts = [i for i in range(lo, hi) if _content(lines[i]) and lines[i].lstrip().startswith("- ")
              and len(lines[i]) - len(lines[i].lstrip(" ")) == min(
                  len(lines[j]) - len(lines[j].lstrip(" ")) for j in range(lo, hi)
                  if _content(lines[j]))]
    if index >= len(starts):
        raise _Unsafe
    start = starts[index]
    end = starts[index + 1] if index + 1 < len(starts) else hi
    return start, end, _column(lines[start])


def _insertion_point(lines: list[str], lo: int, hi: int) -> int:
    """After the last content line of lines lo..hi (comments after it belong to what
    follows), or at lo when there is none."""
    last = max((i for i in range(lo, hi) if _content(lines[i])), default=lo - 1)
    return last + 1


def _set(lines: list[str], path: KeyPath, text: str, note: str | None = None) -> None:
    """Set the value at `path` to the YAML `text`, in place (missing keys inserted), with
    `note` as a comment before the line's own."""
    lo, hi, column = 0, len(lines), 0
    for depth, key in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(key, int):
            lo, hi, column = _list_item(lines, lo, hi, key)
            continue  # the item's first key shares the dash's line: searched from there
        found = _find(lines, lo, hi, column, str(key))
        if found is None:
            at = _insertion_point(lines, lo, hi)
            lines.insert(at, f"{' ' * column}{key}:" + (
                f" {text}" + (f"  # {note}" if note else "") if last else ""))
            lo, hi, column = at + 1, at + 1, column + 2
            continue
        m = _VALUE.match(lines[found])
        if m is None:
            raise _Unsafe
        value = m["value"].strip()
        if last:
            if value.count("[") != value.count("]") or value.count("{") != value.count("}"):
                raise _Unsafe  # a flow value over several lines
            first, end, _ = _children(lines, found, hi)
            if not value:  # a block value (a list or mapping under the key): replaced whole
                del lines[first:end]
            tail = m["tail"]
            if note:
                comment = tail.strip().removeprefix("#").strip()
                tail = f"  # {note}" + (f"; {comment}" if comment else "")
            head = m["head"] if m["head"].endswith(" ") else m["head"] + " "
            lines[found] = f"{head}{text}{tail}"
            return
        if value:
            raise _Unsafe  # a flow-style section: not edited as text
        lo, hi, column = _children(lines, found, hi)


def _mapping_entry(path: KeyPath) -> bool:
    """A key inside model.class_confidence or model.class_aliases (written as a whole)."""
    return len(path) > 1 and path[-2] in ("class_confidence", "class_aliases")


def rewrite(text: str, changes: Mapping[KeyPath, Any], note: bool = True) -> WrittenConfig:
    """The config text with these changes (see the module docstring); `note`: each changed
    line says `# tune: was <old value>` before its own comment."""
    data = yaml.safe_load(text)
    expected = apply_to_data(data, changes)
    lines = text.splitlines()
    try:
        mappings = {p[:-1] for p in changes if _mapping_entry(p)}
        for path in dict.fromkeys(p[:-1] if _mapping_entry(p) else p for p in changes):
            value = _at(expected, path)
            if path in mappings and value is None:
                value = {}
            _set(lines, path, yaml_value(value), note and f"tune: was {_was(data, path)}")
        edited = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
        if yaml.safe_load(edited) == expected:
            return WrittenConfig(edited, True)
    except (_Unsafe, yaml.YAMLError):
        pass
    return WrittenConfig(yaml.safe_dump(expected, sort_keys=False, width=100), False)


def _was(data: Any, path: KeyPath) -> str:
    """The old value at `path`, as YAML ("unset" when the key was missing)."""
    try:
        return yaml_value(_at(data, path))
    except (KeyError, IndexError, TypeError):
        return "unset (the default)"


def _at(data: Any, path: KeyPath) -> Any:
    for key in path:
        data = data[key]
    return data


def rebase_paths(text: str, original_dir: Path) -> WrittenConfig:
    """Relative model, source and store paths made absolute against `original_dir` (where
    the user's file was), so the file works from another folder."""
    data = yaml.safe_load(text)
    changes: dict[KeyPath, Any] = {}
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, dict) and isinstance(model.get("path"), str):
        changes[("model", "path")] = model["path"]
    for i, stream in enumerate(data.get("streams") or [] if isinstance(data, dict) else []):
        if isinstance(stream, dict) and isinstance(stream.get("source"), str):
            changes[("streams", i, "source")] = stream["source"]
    store = data.get("store") if isinstance(data, dict) else None
    if isinstance(store, dict) and isinstance(store.get("path"), str):
        changes[("store", "path")] = store["path"]
    rebased = {p: v2 for p, v in changes.items() if (v2 := _absolute(v, original_dir)) != v}
    if not rebased:
        return WrittenConfig(text, True)
    return rewrite(text, rebased, note=False)


def _absolute(value: str, base: Path) -> str:
    """`value` with a relative path (or a `${VAR:-relative default}`) made absolute; URLs,
    absolute paths and plain `${VAR}` references unchanged."""
    m = _ENV_DEFAULT.match(value)
    if m is not None:
        default = m["default"]
        if default and "://" not in default and not Path(default).is_absolute():
            default = str((base / default).resolve())
        return f"${{{m['name']}:-{default}}}{m['rest']}"
    if "://" in value or "${" in value or Path(value).is_absolute():
        return value
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value
