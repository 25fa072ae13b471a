"""What the pipeline needs from a detector (`Detector`), and what every backend shares.

Backends: `OpenVINODetector` (openvino_detector.py) and `UltralyticsDetector`
(ultralytics_detector.py); `create_detector` (factory.py) picks one for `model:`. Run-time
package installs by Ultralytics are switched off here, before anything imports it: every
dependency is declared in pyproject.toml.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Protocol

from lanewatch.sinks.errors import ModelError
from lanewatch.sinks.frames import Frame, Image
from lanewatch.stream.detect.detection_plan import DetectionPlan
from lanewatch.trackers.detections import Detections

# Must be set before Ultralytics is imported: it reads them at import time.
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ.setdefault("YOLO_VERBOSE", "false")

log = logging.getLogger(__name__)


class Detector(Protocol):
    """What the pipeline needs from a detector. Optional extras, looked up with getattr:
    `detect_frames(frames, imgsz)` (pipelined, several frames in flight) and
    `prepare(frame_size, imgsz)` (start-up work for a stream's frames before the first one,
    such as compiling the model for their input size)."""

    class_names: dict[int, str]
    task: str

    def detect(self, image: Image, imgsz: int | None = None) -> Detections:
        """Objects in one image (BGR pixels or a frame's Picture), at network input size
        `imgsz` (default model.imgsz)."""
        ...

    def check_input_size(self, imgsz: int) -> None:
        """ModelError (saying what to change) when the model cannot run at `imgsz`."""
        ...

    def detect_batch(self, images: list[Image], imgsz: int | None = None
                     ) -> list[Detections]:
        """Objects in several images, inferred together."""
        ...


def detect_frames(detector: Detector, frames: Iterable[Frame], plan: DetectionPlan
                  ) -> Iterator[tuple[Frame, Detections | None]]:
    """Each frame in order with its detections, or None for a frame the plan skips (the
    tracker predicts it). Pipelined (several frames in flight) when the detector can do that,
    one at a time otherwise; crops and restores as the plan says."""
    pipelined = getattr(detector, "detect_frames", None)
    if pipelined is None:
        for frame in frames:
            yield frame, (plan.restore(detector.detect(plan.crop(frame.picture), plan.imgsz))
                          if plan.due() else None)
        return
    pending: collections.deque[tuple[Frame, bool]] = collections.deque()

    def due_frames() -> Iterator[Frame]:
        for frame in frames:
            due = plan.due()
            pending.append((frame, due))
            if due:
                yield dataclasses.replace(frame, picture=plan.crop(frame.picture))

    for _, detections in pipelined(due_frames(), plan.imgsz):
        # Frames the plan skipped come out in order before the detected frame after them.
        while not pending[0][1]:
            yield pending.popleft()[0], None
        yield pending.popleft()[0], plan.restore(detections)
    while pending:  # skipped frames after the last detected one
        yield pending.popleft()[0], None


def resolve_class_ids(wanted: list[str] | None, names: dict[int, str]) -> list[int] | None:
    """Class ids for the configured class names; ModelError naming unknown ones."""
    if wanted is None:
        return None
    by_name = {v: k for k, v in names.items()}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, list(by_name), n=1)
            hints.append(f"'{u}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ModelError(
            f"model.classes: {', '.join(hints)} not among the model's classes "
            f"({', '.join(list(by_name)[:12])}{', ...' if len(by_name) > 12 else ''})"
        )
    return [by_name[w] for w in wanted]


