"""A stream's `lanes:` spliced into a config file as written: every other byte of the file
(comments, blank lines, key order, flow lists broken over lines, `${ENV}` references) is kept.

ruamel.yaml's round-trip loader tells where the stream's `lanes:` block and each of its lanes
start and end; only lines of lanes that change are rewritten:
- a lane whose settings are unchanged keeps its lines as written (comments included);
- a changed lane is updated in place in ruamel's tree, so the end-of-line comments on its keys
  (`- name: lane1  # leftmost lane`) survive; full-line comments inside it are dropped;
- the comment lines between two lanes stay in front of the lane that follows them (they are
  dropped with it when it is removed); a new lane is written at the end.
Re-emitting the whole file through ruamel would reflow its long flow lists: hence the splice.
"""

from __future__ import annotations

import io
import re
import textwrap
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import CommentToken

from lanewatch.sinks.errors import ConfigError

_BLANK_OR_COMMENT = re.compile(r"^\s*(#.*)?$")


def _emitter() -> YAML:
    out = YAML()  # round-trip: keeps the comments of the lanes updated in place
    out.indent(mapping=2, sequence=4, offset=2)  # "- name:" two columns in, like configs/
    out.width = 4096  # a polygon stays on its own line, as the editor's users wrote them
    return out


def _flow(value: Any) -> Any:
    """Lists of numbers (points, polygons) and small mappings written inline, as in configs/."""
    if isinstance(value, dict):
        node = CommentedMap(value)
        node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        node = CommentedSeq([_flow(v) if isinstance(v, list) else v for v in value])
        node.fa.set_flow_style()
        return node
    return value


def _updated(lane: CommentedMap | None, record: dict[str, Any]) -> CommentedMap:
    """`lane` (a lane as loaded, or None for a new one) changed to `record` in place."""
    lane = CommentedMap() if lane is None else lane
    for key in [k for k in lane if k not in record]:
        del lane[key]
    for key, value in record.items():
        if lane.get(key) != value:  # unchanged values keep their written form
            lane[key] = _flow(value)
    return lane


def _tokens(node: Any):
    """Every comment token held by `node` and the nodes inside it, with a setter."""
    if not isinstance(node, CommentedBase):
        return
    ca = node.ca
    groups = [ca.comment] if ca.comment else []
    groups += list(ca.items.values()) + ([ca.end] if ca.end else [])
    for group in groups:
        for i, token in enumerate(group if isinstance(group, list) else ()):
            if isinstance(token, CommentToken):
                yield group, i, token
    for child in node.values() if isinstance(node, dict) else node:
        yield from _tokens(child)


def _tidy_comments(lane: CommentedMap, shift: int) -> None:
    """End-of-line comments moved `shift` columns (the lane is written at column 0, then
    indented); full-line comments dropped (those between lanes are kept by the splice)."""
    for group, i, token in list(_tokens(lane)):
        first, *rest = token.value.split("\n", 1)
        if not first.strip():  # a full-line comment only
            group[i] = None
            continue
        if rest:
            token.value = first + "\n"
        token.column = max(token.column + shift, 0)


def _lane_text(lane: CommentedMap, indent: int) -> list[str]:
    """One lane as the lines of a `lanes:` item, indented by `indent` columns."""
    _tidy_comments(lane, 2 - indent)  # written with its "- " at column 2
    buf = io.StringIO()
    _emitter().dump(CommentedSeq([lane]), buf)
    # The emitter puts a sequence at the top level at column `offset` (2): shift it to 0.
    lines = [line[2:] if line.startswith("  ") else line for line in buf.getvalue().splitlines()]
    while lines and _BLANK_OR_COMMENT.match(lines[-1]):
        lines.pop()
    return textwrap.indent("\n".join(lines) + "\n", " " * indent).splitlines(keepends=True)


def lanes_block(records: list[dict[str, Any]], indent: int = 0) -> str:
    """`lanes:` and its list as YAML text, every line indented by `indent` columns."""
    body = [line for record in records for line in _lane_text(_updated(None, record), 2)]
    return textwrap.indent("lanes:\n" + "".join(body), " " * indent)


def _back_over_comments(lines: list[str], start: int, end: int) -> int:
    """`end` moved back over the blank and comment-only lines before it (not before `start`)."""
    while end > start and _BLANK_OR_COMMENT.match(lines[end - 1]):
        end -= 1
    return end


def _as_record(lane: Any) -> Any:
    """A loaded lane as plain data, to compare with a record."""
    if isinstance(lane, dict):
        return {k: _as_record(v) for k, v in lane.items()}
    if isinstance(lane, list):
        return [_as_record(v) for v in lane]
    return lane


def splice_lanes(text: str, stream_id: str, records: list[dict[str, Any]],
                 where: str = "the config", same: Any = None) -> str:
    """`text` (a whole config file) with stream `stream_id`'s lanes replaced by `records`.
    `same(loaded_lane, record)` says whether a lane is unchanged (default: equal as data).
    ConfigError when the file cannot be parsed or has no such stream."""
    try:
        data = YAML().load(text)
    except YAMLError as err:
        raise ConfigError(f"cannot re-read {where}: {err}") from None
    streams = data.get("streams") if isinstance(data, CommentedMap) else None
    if not isinstance(streams, CommentedSeq) or streams.fa.flow_style():
        raise ConfigError(f"{where} has no block-style streams: list")
    index = next((i for i, s in enumerate(streams)
                  if isinstance(s, CommentedMap) and s.get("id") == stream_id), None)
    if index is None:
        raise ConfigError(f"{where} has no stream {stream_id!r} any more")
    entry = streams[index]
    if entry.fa.flow_style() or any(not isinstance(k, str) for k in entry):
        raise ConfigError(f"{where}: stream {stream_id!r} is not a block-style mapping; "
                          "use the lanes: block instead")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    keys = list(entry)
    column = entry.lc.key(keys[0])[1]
    old = entry.get("lanes")
    if "lanes" not in entry:  # a new key at the entry's end, before the comments after it
        at = _entry_end(data, streams, index, lines)
        at = _back_over_comments(lines, entry.lc.key(keys[-1])[0] + 1, at)
        return "".join(lines[:at]) + lanes_block(records, column) + "".join(lines[at:])
    start = entry.lc.key("lanes")[0]
    after = keys[keys.index("lanes") + 1:]
    end = entry.lc.key(after[0])[0] if after else _entry_end(data, streams, index, lines)
    end = _back_over_comments(lines, start + 1, end)
    if not isinstance(old, CommentedSeq) or old.fa.flow_style() or not old \
            or old.lc.line == start:  # `lanes: [...]` or `lanes: []`: written anew
        return "".join(lines[:start]) + lanes_block(records, column) + "".join(lines[end:])
    return "".join(lines[:start]) + _spliced_items(lines, start, end, old, records, same) \
        + "".join(lines[end:])


def _spliced_items(lines: list[str], start: int, end: int, old: CommentedSeq,
                   records: list[dict[str, Any]], same: Any) -> str:
    """The `lanes:` line and the new items, from the old items' lines where they are kept."""
    firsts = [old.lc.item(i)[0] for i in range(len(old))]
    item_column = old.lc.item(0)[1] - 2  # the column of its "- "
    out = lines[start:firsts[0]]  # `lanes:` (with its comment) and the comments before item 0
    items = {}
    for i, lane in enumerate(old):
        stop = firsts[i + 1] if i + 1 < len(old) else end
        body_end = _back_over_comments(lines, firsts[i] + 1, stop)
        before = lines[firsts[i - 1]:firsts[i]] if i else []
        prefix = before[len(before) - (len(before) and _trailing(before)):] if i else []
        if isinstance(lane, CommentedMap) and isinstance(lane.get("name"), str):
            items[lane["name"]] = (lane, prefix, lines[firsts[i]:body_end])
    equal = same or (lambda lane, record: _as_record(lane) == record)
    for record in records:
        lane, prefix, body = items.get(record["name"], (None, [], []))
        if lane is not None and equal(lane, record):
            out += prefix + body
        else:
            out += prefix + _lane_text(_updated(lane, record), item_column)
    return "".join(out)


def _trailing(lines: list[str]) -> int:
    """How many lines at the end of `lines` are blank or comments only."""
    n = 0
    while n < len(lines) and _BLANK_OR_COMMENT.match(lines[len(lines) - 1 - n]):
        n += 1
    return n


def _entry_end(data: CommentedMap, streams: CommentedSeq, index: int,
               lines: list[str]) -> int:
    """The line after stream `index`'s last line: where the next item or top-level key is."""
    if index + 1 < len(streams):
        return streams.lc.item(index + 1)[0]
    keys = list(data)
    after = keys[keys.index("streams") + 1:]
    return data.lc.key(after[0])[0] if after else len(lines)
