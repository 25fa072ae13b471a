"""Lanes drawn in the dashboard's lane editor: validated exactly like a config file, then
written out as YAML (the stream's `lanes:` list, and the whole config file with them).

The editor works in pixels of the camera frame; lanes are exported in the stream's own
coordinate mode (`pixels`, or fractions of the frame for `normalized`). The `lanes:` block is
indented to paste as-is under a `streams:` item (`  - id: cam`). The whole-config export is the
config file as written with only that stream's `lanes:` lines replaced (config_splice.py):
comments and layout stay, and `${ENV}` references such as passwords in camera URLs stay
references and never reach the browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lanewatch.sinks.errors import ConfigError
from lanewatch.sinks.json_input import finite_number, shorten
from lanewatch.stream.config.loading import format_validation_error, parse_config
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.serve.config_splice import lanes_block, splice_lanes
from lanewatch.trackers.analytics.lanes import LaneSpec, resolve_lanes

_DIGITS = {"pixels": 0, "normalized": 4}
# What the editor shows and sends; a lane's other settings (max_dwell_s) are carried over from
# the running lane of the same name, so applying or exporting drawn lanes never drops them.
EDITOR_FIELDS = frozenset({"name", "polygon", "line", "direction", "in_label", "out_label",
                           "congestion"})
PASTE_INDENT = 4  # keys of a `streams:` item in configs/ (`  - id: cam` then `    lanes:`)


def lanes_from_editor(payload: Any, stream: StreamConfig,
                      frame_size: tuple[int, int]) -> list[LaneSpec]:
    """Validate `{"lanes": [...]}` (pixel coordinates of a `frame_size` frame) as lanes of
    `stream`, converted to its coordinate mode. Raises ConfigError naming the lane and field."""
    if not isinstance(payload, dict) or not isinstance(payload.get("lanes"), list):
        raise ConfigError('expected {"lanes": [...]} with each lane\'s name, polygon and/or '
                          'line in pixels')
    width, height = frame_size
    scale = (1 / width, 1 / height) if stream.coordinates == "normalized" else (1, 1)
    digits = _DIGITS[stream.coordinates]
    running = {spec.name: spec for spec in stream.lanes}
    lanes = []
    for raw in payload["lanes"]:
        if not isinstance(raw, dict):
            raise ConfigError("each lane must be an object")
        lane = dict(raw)
        if isinstance(lane.get("name"), str) and lane["name"] in running:
            kept = running[lane["name"]].model_dump(mode="json", exclude_defaults=True)
            for key in kept.keys() - EDITOR_FIELDS:
                lane.setdefault(key, kept[key])
        name = shorten(repr(lane.get("name")))
        for key in ("polygon", "line"):
            points = lane.get(key)
            if points is not None:
                lane[key] = _scaled(points, scale, digits, f"lane {name}: {key}")
        lanes.append(lane)
    data = {"id": stream.id, "source": stream.source, "coordinates": stream.coordinates,
            "lanes": lanes}
    try:
        specs = StreamConfig.model_validate(data).lanes
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, data, f"streams({stream.id})")) from None
    try:
        resolve_lanes(specs, stream.coordinates, width, height)
    except ValueError as err:
        raise ConfigError(f"streams({stream.id}).lanes: {err}") from None
    return specs


def _scaled(points: Any, scale: tuple[float, float], digits: int,
            where: str) -> list[list[float | int]]:
    """[[x, y], ...] in pixels, scaled to the stream's coordinates and rounded."""
    if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in points):
        raise ConfigError(f"{where} must be a list of [x, y] points")
    scaled = []
    for point in points:
        x, y = (finite_number(v) for v in point)
        if x is None or y is None:  # 1e400 arrives as inf; a 400-digit integer overflows
            bad = point[0] if x is None else point[1]
            raise ConfigError(f"{where}: {shorten(repr(bad))} is not a finite number; give "
                              "each point as [x, y] in pixels of the frame")
        scaled.append([_round(x * scale[0], digits), _round(y * scale[1], digits)])
    return scaled


def _round(value: float, digits: int) -> float | int:
    return round(value) if digits == 0 else round(value, digits)


def lane_records(specs: list[LaneSpec]) -> list[dict[str, Any]]:
    """Lanes as plain YAML-ready mappings (defaults left out, direction always written)."""
    records = []
    for spec in specs:
        record = spec.model_dump(mode="json", exclude_defaults=True)
        record["direction"] = spec.direction.value
        for key in ("polygon", "line"):
            if key in record:  # 499 rather than 499.0 for whole pixels
                record[key] = [[int(v) if float(v).is_integer() else v for v in point]
                               for point in record[key]]
        records.append(record)
    return records


def lanes_yaml(specs: list[LaneSpec]) -> str:
    """The `lanes:` block of one stream, indented to paste as-is under its `streams:` item."""
    note = "# paste under the stream's `- id:` line in streams:, replacing its lanes:\n"
    return " " * PASTE_INDENT + note + lanes_block(lane_records(specs), indent=PASTE_INDENT)


def _same_lane(written: Any, record: dict[str, Any]) -> bool:
    """Whether a lane as written in the file means what `record` does (defaults, 10 vs 10.0
    and key order aside): then its lines are kept as they are."""
    try:
        return LaneSpec.model_validate(written) == LaneSpec.model_validate(record)
    except ValidationError:
        return False


def config_yaml(config_path: Path, stream_id: str, specs: list[LaneSpec]) -> str:
    """The config file at `config_path` with `stream_id`'s lanes replaced and nothing else
    changed, checked as a whole (the same checks as `lanewatch check-config`)."""
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot re-read {config_path}: {err}") from None
    spliced = splice_lanes(text, stream_id, lane_records(specs), str(config_path), _same_lane)
    try:
        data = yaml.safe_load(spliced)
    except yaml.YAMLError as err:  # the splice's own bug: say so rather than hand it out
        raise ConfigError(f"the lanes could not be spliced into {config_path} ({err}); use "
                          "the lanes: block instead") from None
    config = parse_config(data, str(config_path), config_path.parent.resolve())
    written = next(s for s in config.streams if s.id == stream_id).lanes
    if [lane.model_dump() for lane in written] != [lane.model_dump() for lane in specs]:
        raise ConfigError(f"the lanes could not be spliced into {config_path} as drawn; use "
                          "the lanes: block instead")
    return spliced
