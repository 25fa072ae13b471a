"""What the pipeline needs from a detector (`Detector`), and what every backend shares.

Backends: `OpenVINODetector` (openvino_detector.py) and `UltralyticsDetector`
(ultralytics_detector.py); `create_detector` (factory.py) picks one for `model:`. Run-time
package installs by Ultralytics are switched off here, before anything imports it: every
dependency is declared in pyproject.toml.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from lanewatch.sinks.errors import ModelError
from lanewatch.sinks.frames import Frame, Image
from lanewatch.trackers.detections import Detections

# Must be set before Ultralytics is imported: it reads them at import time.
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ.setdefault("YOLO_VERBOSE", "false")

log = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    """What the pipeline needs from a detector: every member, required or optional, is
    declared here, so callers call them and never probe for them.

    Required: `class_names`, `task`, `detect`, `check_input_size`, `detect_batch`.
    Optional capabilities: `prepare`, `set_callers`, `detect_frames` and `close`. A backend
    with nothing of its own to add for one inherits it from `DetectorDefaults`, whose
    behaviour each method's docstring states (no start-up work; the number of callers
    ignored; one frame at a time; nothing to release)."""

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

    def prepare(self, frame_size: tuple[int, int], imgsz: int | None = None,
                single: bool = False) -> None:
        """Optional: start-up work for a stream's frames of `frame_size` (w, h) before the
        first one, such as compiling the model for their input size; `single`: for `detect`
        one frame at a time (live), not `detect_frames` (review)."""
        ...

    def set_callers(self, callers: int) -> None:
        """Optional: how many threads call `detect` at once (a live service: one per
        stream), for a backend that tunes itself to it."""
        ...

    def detect_frames(self, frames: Iterable[Frame], imgsz: int | None = None
                      ) -> Iterator[tuple[Frame, Detections]]:
        """Optional: each frame in order with its detections; a backend that can keeps
        several frames in flight (pipelined) while the caller works on the results."""
        ...

    def close(self) -> None:
        """Optional: release what the detector runs on its own (a dispatcher thread); the
        detector is not used afterwards."""
        ...


class DetectorDefaults:
    """The optional `Detector` capabilities for a backend that has nothing of its own for
    them: inherit it and override what the backend does better."""

    def prepare(self, frame_size: tuple[int, int], imgsz: int | None = None,
                single: bool = False) -> None:
        """No start-up work: the first frame finds the model ready."""

    def set_callers(self, callers: int) -> None:
        """The number of callers changes nothing."""

    def detect_frames(self: Detector, frames: Iterable[Frame], imgsz: int | None = None
                      ) -> Iterator[tuple[Frame, Detections]]:
        """One frame at a time through `detect`: nothing in flight between frames."""
        for frame in frames:
            yield frame, self.detect(frame.picture, imgsz)

    def close(self) -> None:
        """Nothing of its own to release: the model is freed with the object."""


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


