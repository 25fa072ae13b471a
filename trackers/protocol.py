"""The tracker protocol: what the pipeline needs from any multi-object tracker.

ByteTrack is the default; another tracker plugs in by implementing these two methods. Output
rows must be rows of the input detections (carrying `detection_index`), so masks, classes and
scores follow each track without re-matching boxes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lanewatch.trackers.bytetrack.tracker import TrackerOutput
from lanewatch.trackers.detections import Detections


@runtime_checkable
class Tracker(Protocol):
    """A stateful per-stream tracker."""

    def update(self, detections: Detections, timestamp_s: float) -> TrackerOutput:
        """Associate one frame's detections; return the rows of confirmed tracks with ids."""
        ...

    def reset(self) -> None:
        """Forget all tracks (ids are not reused afterwards)."""
        ...
