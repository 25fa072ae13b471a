"""The settings `tune` searches (`Dimension`s) and how a candidate config is made from them.

A candidate is the user's config with some of these settings changed. Each dimension is one
key of the config file (`path`), the values tried for it, and whether a change costs a new
detector pass (the model's input size, the region crop): those are searched only without
`--quick`, after the settings that re-use the cached detections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lanewatch.stream.config.schema import Config

Path = tuple[str | int, ...]  # keys and list indexes from the top of the config
Values = Mapping[str, Any]  # dimension name -> value

# The values tried (the user's own value is always added). Scores are compared strictly
# above a threshold, as the detector and the tracker do.
CONFIDENCES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
TRACK_STARTS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
HIGH_THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
MIN_HITS = (3, 4, 5, 6)
CLASS_CONFIDENCES = (None, 0.05, 0.1, 0.2, 0.3, 0.4)
CADENCES = (1, 2, 3, 4, 5, 6, 8, 10, 12)
IMGSZ = (480, 640, 800)
QUICK_CONFIDENCES = (0.05, 0.1, 0.2, 0.3)
QUICK_TRACK_STARTS = (0.1, 0.2, 0.3, 0.4)
QUICK_HIGH_THRESHOLDS = (0.2, 0.3, 0.4)
VEHICLES = ("bicycle", "car", "motorcycle", "bus", "truck")


@dataclass(frozen=True)
class Dimension:
    """One setting searched.

    Attributes:
        name: as the report and tune.json name it (the key in the config file).
        path: where it lives in the config (keys, and the stream's index in `streams`).
        values: the values tried, in order (ascending for `ordered` ones).
        ordered: numbers on a scale: among equally good values, the middle of the widest
            run of them is taken (the setting furthest from where the counts change).
        detector_pass: a change needs a new detector pass over the clip (costly).
    """

    name: str
    path: Path
    values: tuple[Any, ...]
    ordered: bool = True
    detector_pass: bool = False


def get(config: Config, path: Path) -> Any:
    """The value at `path` (None for an unset key of a mapping such as class_confidence)."""
    node: Any = config
    for key in path:
        if isinstance(key, int):
            node = node[key]
        elif isinstance(node, Mapping):
            node = node.get(key)
        else:
            node = getattr(node, key)
    return tuple(node) if isinstance(node, list) else node


def _with(values: tuple, own: Any, ordered: bool) -> tuple:
    """The values with the user's own added (sorted when ordered)."""
    if own in values:
        return values
    return tuple(sorted((*values, own))) if ordered else (own, *values)


def dimensions(config: Config, stream_index: int, manual_classes: list[str],
               model_classes: list[str], quick: bool = False,
               aliases: Mapping[str, str] | None = None) -> list[Dimension]:
    """The dimensions searched for one stream, cheapest first. `manual_classes`: the classes
    of the manual count; `aliases`: model class -> manual class seen confused with it (from a
    candidate that kept every class), each a candidate `class_aliases` entry."""
    stream = config.streams[stream_index]
    sid = f"streams({stream.id})"
    m, t = config.model, config.tracker
    dims = [
        Dimension("model.confidence", ("model", "confidence"),
                  _with(QUICK_CONFIDENCES if quick else CONFIDENCES, m.confidence, True)),
        Dimension("tracker.new_track_threshold", ("tracker", "new_track_threshold"),
                  _with(QUICK_TRACK_STARTS if quick else TRACK_STARTS,
                        t.new_track_threshold, True)),
        Dimension("tracker.high_threshold", ("tracker", "high_threshold"),
                  _with(QUICK_HIGH_THRESHOLDS if quick else HIGH_THRESHOLDS,
                        t.high_threshold, True)),
    ]
    own_classes = None if m.classes is None else tuple(m.classes)
    choices = [own_classes]
    if own_classes is not None:
        missing = [c for c in manual_classes if c not in own_classes and c in model_classes]
        if missing:
            choices.append(own_classes + tuple(missing))
        vehicles = tuple(c for c in model_classes if c in VEHICLES or c in manual_classes)
        if set(vehicles) != set(own_classes) and vehicles:
            choices.append(vehicles)
        choices.append(None)  # every class
    dims.append(Dimension("model.classes", ("model", "classes"), tuple(choices), ordered=False))
    for source, target in sorted((aliases or {}).items()):
        own = m.class_aliases.get(source)
        dims.append(Dimension(f"model.class_aliases.{source}",
                              ("model", "class_aliases", source),
                              tuple(dict.fromkeys((own, None, target))), ordered=False))
    dims.append(Dimension("model.agnostic_nms", ("model", "agnostic_nms"),
                          tuple(dict.fromkeys((m.agnostic_nms, False, True))), ordered=False))
    if not quick:
        dims.append(Dimension("tracker.min_hits", ("tracker", "min_hits"),
                              _with(MIN_HITS, t.min_hits, True)))
        for cls in manual_classes:
            if cls in model_classes:
                dims.append(Dimension(
                    f"model.class_confidence.{cls}", ("model", "class_confidence", cls),
                    _with(CLASS_CONFIDENCES, m.class_confidence.get(cls), False),
                    ordered=False))
    cadence = stream.detection.every_nth_frame
    if cadence > 1:  # only lowered: see cadence_values
        dims.append(Dimension(f"{sid}.detection.every_nth_frame",
                              ("streams", stream_index, "detection", "every_nth_frame"),
                              cadence_values(cadence)))
    if not quick:
        dims.append(Dimension("model.imgsz", ("model", "imgsz"), _with(IMGSZ, m.imgsz, True),
                              detector_pass=True))
        region = stream.detection.region
        own = region if isinstance(region, str) else tuple(region)
        dims.append(Dimension(f"{sid}.detection.region",
                              ("streams", stream_index, "detection", "region"),
                              tuple(dict.fromkeys((own, "full", "lanes"))), ordered=False,
                              detector_pass=True))
    return dims


def cadence_values(own: int) -> tuple[int, ...]:
    """The cadences searched: the user's and lower ones only. A higher cadence gives the
    tracker strictly less to go on; when it counts better on a short clip, that is luck (a
    miss that happens to fall between detections), not a setting to keep. How far the
    cadence could go up at the same score is reported separately (`cadence_headroom`)."""
    return tuple(v for v in CADENCES if v < own) + (own,)


def user_values(config: Config, dims: list[Dimension]) -> dict[str, Any]:
    """Each dimension's value in the user's config."""
    return {d.name: get(config, d.path) for d in dims}


def apply(config: Config, dims: list[Dimension], values: Values) -> Config | None:
    """The config with these values, validated as a config file is; None when the
    combination is not a valid config (a high threshold under the low one, an alias to a
    class not kept...)."""
    data = config.model_dump()
    by_name = {d.name: d for d in dims}
    for name, value in values.items():
        *parents, last = by_name[name].path
        node = data
        for key in parents:
            node = node[key]
        if value is None and parents and parents[-1] in ("class_confidence", "class_aliases"):
            node.pop(last, None)
        else:
            node[last] = list(value) if isinstance(value, tuple) else value
    try:
        return Config.model_validate(data)
    except ValidationError:
        return None
