"""A stream's `lanes:` spliced into a config file as written: every other byte of the file
(comments, blank lines, key order, flow lists broken over lines, `${ENV}` references) is kept.

ruamel.yaml's round-trip loader finds where the stream's `lanes:` block starts and ends; only
those lines are replaced. The lanes themselves are updated in place where a lane of the same
name existed, so the comments on its keys (`- name: lane1  # leftmost lane`) survive too.
Re-emitting the whole file through ruamel would reflow its long flow lists: hence the splice.
"""

from __future__ import annotations

import io
import re
import textwrap
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
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


def _merged(old: CommentedSeq | None, records: list[dict[str, Any]]) -> CommentedSeq:
    """The new lanes, reusing the old lane mappings (and so their comments) by name."""
    by_name = {lane.get("name"): lane for lane in old or [] if isinstance(lane, CommentedMap)}
    merged = CommentedSeq()
    for record in records:
        lane = by_name.get(record["name"], CommentedMap())
        for key in [k for k in lane if k not in record]:
            del lane[key]
        for key, value in record.items():
            if lane.get(key) != value:  # unchanged values keep their written form
                lane[key] = _flow(value)
        merged.append(lane)
    return merged


def _shift_comments(lanes: CommentedSeq, by: int) -> None:
    """Move the end-of-line comments of the lanes' keys `by` columns (kept at or after 0)."""
    for lane in lanes:
        for tokens in lane.ca.items.values():
            for token in tokens if isinstance(tokens, list) else ():
                if isinstance(token, CommentToken) and "\n" not in token.value.rstrip("\n"):
                    token.column = max(token.column + by, 0)


def lanes_block(records: list[dict[str, Any]], old: CommentedSeq | None = None,
                indent: int = 0) -> str:
    """`lanes:` and its list as YAML text, every line indented by `indent` columns."""
    merged = _merged(old, records)
    _shift_comments(merged, -indent)  # they are written at their column, then indented
    buf = io.StringIO()
    _emitter().dump(CommentedMap(lanes=merged), buf)
    lines = buf.getvalue().splitlines()
    while lines and _BLANK_OR_COMMENT.match(lines[-1]):  # comments before the next key: kept
        lines.pop()                                      # where they are by the splice
    return textwrap.indent("\n".join(lines) + "\n", " " * indent)


def splice_lanes(text: str, stream_id: str, records: list[dict[str, Any]],
                 where: str = "the config") -> str:
    """`text` (a whole config file) with stream `stream_id`'s lanes replaced by `records`.
    ConfigError when the file cannot be parsed or has no such stream."""
    try:
        data = YAML().load(text)
    except YAMLError as err:
        raise ConfigError(f"cannot re-read {where}: {err}") from None
    streams = data.get("streams") if isinstance(data, CommentedMap) else None
    if not isinstance(streams, CommentedSeq):
        raise ConfigError(f"{where} has no streams: list")
    index = next((i for i, s in enumerate(streams)
                  if isinstance(s, CommentedMap) and s.get("id") == stream_id), None)
    if index is None:
        raise ConfigError(f"{where} has no stream {stream_id!r} any more")
    entry = streams[index]
    if any(not isinstance(k, str) for k in entry) or isinstance(entry.get("lanes"), str):
        raise ConfigError(f"{where}: stream {stream_id!r} is not a plain mapping")
    lines = text.splitlines(keepends=True)
    keys = list(entry)
    column = entry.lc.key(keys[0])[1]
    if "lanes" in entry:
        start = entry.lc.key("lanes")[0]
        after = keys[keys.index("lanes") + 1:]
        end = entry.lc.key(after[0])[0] if after else _entry_end(data, streams, index, lines)
    else:  # a new key at the entry's end
        start = end = _entry_end(data, streams, index, lines)
    while end > start and _BLANK_OR_COMMENT.match(lines[end - 1]):
        end -= 1  # the blank lines and comments before the next key stay
    old = entry.get("lanes") if isinstance(entry.get("lanes"), CommentedSeq) else None
    block = lanes_block(records, old, column)
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _entry_end(data: CommentedMap, streams: CommentedSeq, index: int,
               lines: list[str]) -> int:
    """The line after stream `index`'s last line: where the next item or top-level key is."""
    if index + 1 < len(streams):
        return streams.lc.item(index + 1)[0]
    keys = list(data)
    after = keys[keys.index("streams") + 1:]
    return data.lc.key(after[0])[0] if after else len(lines)
