"""The detection step, written once for the review and the live service: which frames the model
sees, their detections, and the wall time each detected frame cost its caller.

- `pipelined_steps` (the review, `lanewatch process`): through the detector's `detect_frames`,
  several frames in flight where the backend can do that; the plan says which frames are due.
- `detection_steps` (a live stream): one frame at a time, each out as soon as it is done; the
  caller says which frames are due (the live runner's `CadenceScheduler`).

Both yield a `DetectedFrame` for every frame, in order. Its `detect_s` is the wall time the
caller spent on that frame's detection: crop, inference and restoring the coordinates; for a
pipelined detector, the time spent submitting and waiting when that frame's detections were
asked for (the frames submitted meanwhile included, the time spent waiting for the source's
frames not). 0 on a frame the model skipped.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from lanewatch.sinks.frames import Frame, Picture
from lanewatch.stream.detect.detection_plan import DetectionPlan
from lanewatch.stream.detect.detector import Detector
from lanewatch.trackers.detections import Detections


@dataclass(frozen=True)
class DetectedFrame:
    """One frame after the detection step.

    Attributes:
        frame: the frame, as the source gave it (not cropped).
        detections: its detections in frame coordinates, or None on a frame the model skipped
            (the tracker predicts it).
        detect_s: wall time the caller spent on this frame's detection; 0 when skipped.
        tiles: a tiled stream's detections per tile, in tile coordinates (`plan.crops`
            order), before they were merged: `DetectionPlan.merge(tiles, policy)` joins them
            for another detection policy (`lanewatch tune`); None when untiled or skipped.
    """

    frame: Frame
    detections: Detections | None
    detect_s: float
    tiles: tuple[Detections, ...] | None = None

    @property
    def detected(self) -> bool:
        """Whether the model saw this frame."""
        return self.detections is not None


def detection_steps(frames: Iterable[Frame], due: Callable[[Frame], bool],
                    detect: Callable[[Picture], Detections]) -> Iterator[DetectedFrame]:
    """Each frame with its detections when `due(frame)`, one at a time: a frame is out before
    the next one is taken. `detect` maps a full frame's picture to detections in frame
    coordinates (`StreamProcessor.detect`: the plan's crop and input size)."""
    for frame in frames:
        if not due(frame):
            yield DetectedFrame(frame, None, 0.0)
            continue
        started = time.perf_counter()
        detections = detect(frame.picture)
        yield DetectedFrame(frame, detections, time.perf_counter() - started)


def pipelined_steps(frames: Iterable[Frame], detector: Detector, plan: DetectionPlan
                    ) -> Iterator[DetectedFrame]:
    """Each frame with its detections, or None where the plan skips it, through
    `detector.detect_frames` (pipelined where the backend is); crops and restores as the plan
    says (a tiled frame: one picture per tile, merged). A skipped frame comes out just before
    the next detected one, or at the end."""
    pending: collections.deque[tuple[Frame, bool]] = collections.deque()
    source = iter(frames)
    waited = 0.0  # seconds spent waiting for the source's frames: decoding, not detection

    def due_frames() -> Iterator[Frame]:
        nonlocal waited
        while True:
            started = time.perf_counter()
            frame = next(source, None)
            waited += time.perf_counter() - started
            if frame is None:
                return
            due = plan.due()
            pending.append((frame, due))
            if due:  # a tiled stream's frame goes in as one picture per tile, in order
                for crop in plan.crops(frame.picture):
                    yield dataclasses.replace(frame, picture=crop)

    # A caller that stops early drops this generator and with it `results`, whose own clean-up
    # (OpenVINO: waiting for the requests in flight) runs then.
    results = detector.detect_frames(due_frames(), plan.imgsz)
    tiles = len(plan.tiles)
    while True:
        started, waited_before = time.perf_counter(), waited
        parts = [found[1] for found in itertools.islice(results, tiles)]
        if not parts:
            break
        detections = plan.merge(parts)
        spent = time.perf_counter() - started - (waited - waited_before)
        while not pending[0][1]:  # skipped frames before this one come out first, in order
            yield DetectedFrame(pending.popleft()[0], None, 0.0)
        yield DetectedFrame(pending.popleft()[0], detections, spent,
                            tuple(parts) if tiles > 1 else None)
    while pending:  # skipped frames after the last detected one
        yield DetectedFrame(pending.popleft()[0], None, 0.0)
