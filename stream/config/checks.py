"""Checks of a configuration beyond its schema: numbers that are not finite, lane points outside
the frame, and (for `lanewatch check-config`) what can be checked on this machine: that the
model exists, and that pixel coordinates fit a file source's frame.

Every problem is one line, `key.path: what is wrong (how to fix it)`. The schema-level checks run
wherever a config is validated (the file, API bodies, the stream registry); `preflight` reads
files, so only `check-config` runs it: the other commands find the same problems when they
start the model or the stream.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lanewatch.stream.config.schema import Config, StreamConfig


MAX_DEPTH = 32  # a lanewatch config nests 7 levels at most (streams[].lanes[].line[][])


def too_deep(tree: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed tree nests lists and mappings more than `limit` levels deep. Iterative:
    the recursive walks that follow (interpolation, validation) would overflow the stack."""
    level: list[Any] = [tree]
    for _ in range(limit + 1):
        level = [child for node in level if isinstance(node, dict | list)
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not level:
            return False
    return True


def non_finite(value: Any, path: str = "") -> str | None:
    """The first NaN or infinite number in a parsed YAML/JSON tree, as one problem line (its
    path below `path`, with the names of list items that have one), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        what = "not a number (NaN)" if math.isnan(value) else "infinite"
        return (f"{path or 'the value'} is {what}: every number must be finite (YAML .nan and "
                ".inf are not valid here)")
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]{_label(v)}", v) for i, v in enumerate(value))
    else:
        return None
    for where, child in items:
        problem = non_finite(child, where)
        if problem is not None:
            return problem
    return None


def _label(item: Any) -> str:
    name = item.get("name", item.get("id")) if isinstance(item, dict) else None  # lane, stream
    return f"({name})" if isinstance(name, str) else ""


def _shapes(stream: StreamConfig) -> list[tuple[str, list]]:
    """(key path, points) of every shape of a stream given in its coordinates."""
    shapes: list[tuple[str, list]] = []
    for i, lane in enumerate(stream.lanes):
        if lane.polygon is not None:
            shapes.append((f"lanes[{i}]({lane.name}).polygon", list(lane.polygon)))
        if lane.line is not None:
            shapes.append((f"lanes[{i}]({lane.name}).line", list(lane.line)))
    if stream.turning is not None:
        for i, zone in enumerate(stream.turning.zones):
            shapes.append((f"turning.zones[{i}]({zone.name}).polygon", list(zone.polygon)))
    if stream.calibration is not None:
        shapes.append(("calibration.image_points", list(stream.calibration.image_points)))
    region = stream.detection.region
    if isinstance(region, list):
        shapes.append(("detection.region", [region[:2], region[2:]]))
    return shapes


def coordinate_problems(stream: StreamConfig, frame: tuple[int, int, str] | None = None
                        ) -> list[str]:
    """Points outside the frame: normalized coordinates outside 0..1, negative pixels, and,
    when `frame` (width, height, the file's name) is known, pixels beyond it."""
    problems = []
    for where, points in _shapes(stream):
        for x, y in points:
            why = _outside(x, y, stream.coordinates, frame)
            if why is not None:
                problems.append(f"{where}: point ({x:g}, {y:g}) {why}")
                break  # one line per shape
    return problems


def _outside(x: float, y: float, coordinates: str, frame: tuple[int, int, str] | None
             ) -> str | None:
    if coordinates == "normalized":
        if 0 <= x <= 1 and 0 <= y <= 1:
            return None
        return ("is not in 0..1, but the stream uses normalized coordinates (fractions of the "
                "frame; use `coordinates: pixels` for pixel values)")
    if x < 0 or y < 0:
        return "is negative (pixel coordinates start at 0, 0 in the top-left corner)"
    if frame is not None and (x > frame[0] or y > frame[1]):
        return (f"is outside the {frame[0]}x{frame[1]} frame of {frame[2]} (pixel "
                "coordinates; use `coordinates: normalized` for 0..1 values)")
    return None


def _looks_like_hub_name(path: str) -> bool:
    """A bare weights name such as 'yolo11n.pt' that Ultralytics downloads (as the detector)."""
    p = Path(path)
    return p.parent == Path(".") and p.suffix == ".pt"


def preflight(config: Config) -> list[str]:
    """What `check-config` verifies on this machine, as problem lines: the model exists, and
    the lanes of streams whose source is a readable video file fit its frame."""
    from lanewatch.stream.sources.live import is_file_source

    problems = []
    path = config.model.path
    if not Path(path).exists() and not _looks_like_hub_name(path):
        problems.append(f"model.path: {path} not found (give a .pt/.onnx/.engine file or an "
                        "export directory such as yolo11n_openvino_model/; a relative path "
                        "is relative to the config file)")
    for i, stream in enumerate(config.streams):
        target = Path(stream.source.removeprefix("file://"))
        if stream.coordinates != "pixels" or not is_file_source(stream.source):
            continue  # normalized points were checked by the schema; a camera's size is unknown
        if not target.is_file():
            continue  # serve waits for a file that appears later; process takes its video
        try:
            width, height = _frame_size(target)
        except Exception as err:  # noqa: BLE001 - unreadable: say so on the source's line
            problems.append(f"streams[{i}]({stream.id}).source: {err}")
            continue
        problems += [f"streams[{i}]({stream.id}).{p}"
                     for p in coordinate_problems(stream, (width, height, target.name))]
    return problems


def _frame_size(path: Path) -> tuple[int, int]:
    from lanewatch.stream.sources.file_source import FileSource

    source = FileSource(path)
    try:
        return source.info.width, source.info.height
    finally:
        source.close()
