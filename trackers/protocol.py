"""The tracker protocol: what the pipeline needs from any multi-object tracker.

ByteTrack is the default; another tracker plugs in by implementing these methods (the stream
pipeline, stream/pipeline/processor.py, calls nothing else). Output rows must be rows of the
input detections (carrying `detection_index`), so masks, classes and scores follow each track
without re-matching boxes. `predict` serves the frames the detector skips: the pipeline shows
the predicted boxes there and the next `update` sees the whole gap.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lanewatch.trackers.bytetrack.tracker import TrackerOutput, TrackPrediction
from lanewatch.trackers.detections import Detections


@runtime_checkable
class Tracker(Protocol):
    """A stateful per-stream tracker."""

    def update(self, detections: Detections, timestamp_s: float) -> TrackerOutput:
        """Associate one frame's detections; return the rows of live tracks with their
        ids, each flagged confirmed or tentative."""
        ...

    def predict(self, timestamp_s: float) -> TrackPrediction:
        """Where the live tracks (those matched at the last update) are at `timestamp_s`,
        without changing any state: ids, predicted boxes and whether each is confirmed."""
        ...

    def reset(self) -> None:
        """Forget all tracks (ids are not reused afterwards)."""
        ...
