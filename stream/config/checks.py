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


def alias_problems(classes: list[str] | None, class_aliases: dict[str, str]) -> list[str]:
    """What is wrong with `model.class_aliases` whatever the model, given `model.classes`
    (the names themselves are checked against the model's: `class_name_problems`)."""
    problems = []
    for source, target in class_aliases.items():
        if source == target:
            problems.append(f"'{source}' maps to itself (remove it)")
        elif target in class_aliases:
            problems.append(f"'{source}' maps to '{target}', which is itself aliased to "
                            f"'{class_aliases[target]}' (map '{source}' straight to the class "
                            "it is counted as)")
        elif classes is not None and target not in classes:
            problems.append(f"'{source}' maps to '{target}', which is not in model.classes "
                            "(add it there: aliases count as one of the kept classes)")
    return problems


def class_confidence_problems(classes: list[str] | None, class_aliases: dict[str, str],
                              class_confidence: dict[str, float]) -> list[str]:
    """What is wrong with `model.class_confidence` whatever the model: a threshold on a class
    that is counted as another, or on a class that is not kept."""
    problems = []
    for name in class_confidence:
        if name in class_aliases:
            problems.append(f"'{name}' is counted as '{class_aliases[name]}' (class_aliases); "
                            f"set the minimum score on '{class_aliases[name]}'")
        elif classes is not None and name not in classes:
            problems.append(f"'{name}' is not in model.classes (add it there or remove its "
                            "threshold)")
    return problems


def class_name_problems(classes: list[str] | None, class_confidence: dict[str, float],
                        class_aliases: dict[str, str], names: dict[int, str]) -> list[str]:
    """Class names of the `model:` section that the model does not have, one line each with
    its key path and the closest name the model has."""
    import difflib

    known = set(names.values())
    problems = []
    where = ([("model.classes", c) for c in classes or []]
             + [(f"model.class_confidence.{c}", c) for c in class_confidence]
             + [(f"model.class_aliases.{s}", s) for s in class_aliases]
             + [(f"model.class_aliases.{s}", t) for s, t in class_aliases.items()])
    for path, name in where:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            shown = ", ".join(list(names.values())[:12]) + (", ..." if len(names) > 12 else "")
            problems.append(f"{path}: '{name}'{hint} not among the model's classes ({shown})")
    return problems


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
    if config.output.speed_labels and config.streams and not any(
            stream.calibration is not None for stream in config.streams):
        problems.append("output.speed_labels: true, but no stream has a `calibration:`, so "
                        "there are no speeds to draw (add a stream's ground plane, "
                        "docs/analytics.md, or set speed_labels: false)")
    return problems


def _frame_size(path: Path) -> tuple[int, int]:
    from lanewatch.stream.sources.file_source import FileSource

    source = FileSource(path)
    try:
        return source.info.width, source.info.height
    finally:
        source.close()
