"""`tune`'s manual count: read with `validate`'s loader and checked against the stream's own
lanes, directions and movements (there is no review yet to check it against), and the clip's
length, before any model is loaded."""

from __future__ import annotations

from pathlib import Path

from lanewatch.sinks.errors import LanewatchError
from lanewatch.sinks.validation_input import ReviewRun, load_manual_counts
from lanewatch.stream.config.schema import Config
from lanewatch.stream.detect.exported_model import exported_model_files
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.trackers.evaluation.count_matching import CountEvent


def _model_class_names(config: Config) -> tuple[str, ...]:
    """The model's class names from an export's metadata (empty when it has none)."""
    found = exported_model_files(config.model.path)
    names = (found[1].get("names") or {}) if found else {}
    return tuple(str(v) for _, v in sorted((int(k), v) for k, v in names.items()))


def read_manual(video: Path, manual_csv: Path, outdir: Path, config: Config, stream_id: str
                ) -> tuple[tuple[CountEvent, ...], list[str]]:
    """The manual count, checked against the stream's lanes and the video: (events,
    warnings). Bad input raises LanewatchError (file:line: what to fix)."""
    stream = config.stream(stream_id)
    source = FileSource(video, stream.id)  # a missing or broken video fails here
    info = source.info
    source.close()
    duration = info.duration_s or ((info.frame_count or 0) / info.fps if info.fps else 0.0)
    labels = {}
    for lane in stream.lanes:
        if lane.line is not None:
            labels[lane.name] = tuple({"both": (lane.in_label, lane.out_label),
                                       "in": (lane.in_label,),
                                       "out": (lane.out_label,)}[lane.direction.value])
    movements = (tuple(m.name for m in stream.turning.movements)
                 if stream.turning is not None else None)
    classes = _model_class_names(config) or tuple(config.model.classes or ())
    run = ReviewRun(outdir, stream.id, str(video), info.fps, duration, labels,
                    movements, classes, ())
    manual = load_manual_counts(manual_csv, run)
    warnings = list(manual.warnings)
    configured = Path(stream.source)
    if "://" not in stream.source and configured.is_file() and (
            configured.resolve() != video.resolve()):
        warnings.append(f"the stream's source is {stream.source}, the clip {video}: "
                        "the lanes are tuned as drawn for the stream; check they fit the clip")
    if not manual.events:
        raise LanewatchError(f"{manual_csv}: no counted vehicles: tune needs a manual "
                             "count with at least one row")
    return manual.events, warnings
