"""Ultralytics' own loops on the bench's clip and model, the references `lanewatch bench`
compares `process` with: `model.track` (detect + ByteTrack) and `solutions.ObjectCounter`."""

from __future__ import annotations

import time
from pathlib import Path

from lanewatch.stream.config.schema import Config
from lanewatch.stream.detect.detector import resolve_class_ids


def _ultralytics_args(config: Config, names: dict[int, str]) -> dict:
    m = config.model
    return {"imgsz": m.imgsz, "conf": m.confidence, "iou": m.iou,
            "classes": resolve_class_ids(m.classes, names), "verbose": False}


def measure_ultralytics_track(config: Config, video: Path) -> float:
    """Ultralytics' own detect + ByteTrack loop over the clip (its loader decodes)."""
    from ultralytics import YOLO

    model = YOLO(config.model.path, task=config.model.task)
    args = _ultralytics_args(config, dict(model.names))
    n, start = 0, time.perf_counter()
    for _ in model.track(source=str(video), stream=True, tracker="bytetrack.yaml",
                         persist=True, **args):
        n += 1
    return n / (time.perf_counter() - start)


def object_counter_region(config: Config) -> list[tuple] | None:
    """ObjectCounter's one counting line for the first stream: its counting lines joined,
    first start to last end; None when it has no counting line (only lane polygons)."""
    lines = [lane.line for lane in config.streams[0].lanes if lane.line is not None]
    return [tuple(lines[0][0]), tuple(lines[-1][1])] if lines else None


def measure_object_counter(config: Config, video: Path) -> tuple[float, int] | None:
    """Ultralytics `solutions.ObjectCounter` (ByteTrack) on the clip; (frames/s, crossings),
    or None when the stream has no counting line for it to count at."""
    import cv2
    from ultralytics import YOLO, solutions

    region = object_counter_region(config)
    if region is None:
        return None
    args = _ultralytics_args(config, dict(YOLO(config.model.path, task=config.model.task).names))
    counter = solutions.ObjectCounter(model=config.model.path, region=region, show=False,
                                      tracker="bytetrack.yaml", classes=args["classes"],
                                      conf=args["conf"], iou=args["iou"], verbose=False)
    capture = cv2.VideoCapture(str(video))
    n, start, result = 0, time.perf_counter(), None
    while True:
        ok, image = capture.read()
        if not ok:
            break
        result = counter(image)
        n += 1
    capture.release()
    fps = n / (time.perf_counter() - start)
    return fps, (result.in_count + result.out_count) if result is not None else 0
