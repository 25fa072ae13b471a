"""Per-stream processing: detect -> track -> lane analytics, one frame at a time.

`StreamProcessor` owns the per-stream state (tracker ids, lane counts, detection plan) and
borrows a detector, which may be shared by several streams. It is synchronous; the offline
review and the live service decide where it runs. On frames the detection plan skips, the
tracker's prediction stands in for the detector, so lanes still see every frame.
"""

from __future__ import annotations

import time

import numpy as np

from lanewatch.sinks.errors import ConfigError, ModelError
from lanewatch.sinks.frames import Frame, Picture
from lanewatch.sinks.results import FrameResult, StageTimings
from lanewatch.stream.config.schema import Config, StreamConfig
from lanewatch.stream.detect.detection_plan import DetectionPlan, resolve_region
from lanewatch.stream.detect.detector import Detector
from lanewatch.stream.detect.policy_config import build_policy
from lanewatch.stream.detect.step import detection_steps
from lanewatch.trackers.analytics.dwell import Area
from lanewatch.trackers.analytics.ground import GroundPlane, SpeedEstimator
from lanewatch.trackers.analytics.lane_analytics import LaneAnalytics
from lanewatch.trackers.analytics.lanes import Lane, resolve_lanes, to_pixels
from lanewatch.trackers.bytetrack.tracker import ByteTrack
from lanewatch.trackers.detection_policy import DetectionPolicy
from lanewatch.trackers.detections import Detections
from lanewatch.trackers.protocol import Tracker


class StreamProcessor:
    """Detection, tracking and lane analytics for one stream."""

    def __init__(
        self,
        stream: StreamConfig,
        config: Config,
        detector: Detector,
        frame_size: tuple[int, int],
        fps: float,
        origin_s: float = 0.0,
        retain_intervals: int | None = None,
        tracker: Tracker | None = None,
    ):
        """`tracker`: this stream's own tracker (default: ByteTrack with the config's
        `tracker:` settings); only the `Tracker` protocol's methods are used."""
        self.stream = stream
        self.frame_size = frame_size
        self.detector = detector
        # Built once: the classes, aliases, score floors and suppression every detected
        # frame goes through (`update`).
        self.policy: DetectionPolicy = build_policy(config.model, detector.class_names,
                                                    stream.detection.agnostic_nms)
        try:
            self.lanes: list[Lane] = resolve_lanes(stream.lanes, stream.coordinates, *frame_size)
        except ValueError as err:
            raise ConfigError(f"streams({stream.id}).lanes: {err}") from None
        try:
            region = resolve_region(stream.detection, self.lanes, stream.coordinates,
                                    frame_size)
            if stream.detection.imgsz is not None:
                detector.check_input_size(stream.detection.imgsz)
        except ValueError as err:
            raise ConfigError(f"streams({stream.id}).detection.region: {err}") from None
        except ModelError as err:
            raise ConfigError(f"streams({stream.id}).detection.imgsz: {err}") from None
        self.plan = DetectionPlan(stream.detection, region, frame_size,
                                  config.model.iou, self.policy)
        self.tracker: Tracker = (ByteTrack(config.tracker, frame_rate=fps) if tracker is None
                                 else tracker)
        zones, speeds = self._scene(stream, frame_size)
        self.analytics = LaneAnalytics(stream.id, self.lanes, config.counting, frame_size,
                                       origin_s=origin_s, zones=zones, turning=stream.turning,
                                       speeds=speeds, retain_intervals=retain_intervals)
        self._last_tracked = Detections.empty(detector.class_names)

    @staticmethod
    def _scene(stream: StreamConfig, frame_size: tuple[int, int]
               ) -> tuple[list[Area], SpeedEstimator | None]:
        """Turning zones and the ground plane in pixels of this frame size."""
        zones, speeds = [], None
        try:
            for z in stream.turning.zones if stream.turning else []:
                polygon = to_pixels(z.polygon, stream.coordinates, *frame_size, f"zone '{z.name}'")
                zones.append(Area(z.name, polygon, z.max_dwell_s))
        except ValueError as err:
            raise ConfigError(f"streams({stream.id}).turning: {err}") from None
        if stream.calibration is not None:
            c = stream.calibration
            try:
                points = to_pixels(c.image_points, stream.coordinates, *frame_size,
                                   "image_points")
                speeds = SpeedEstimator(GroundPlane(points, c.world_points), c)
            except ValueError as err:
                raise ConfigError(f"streams({stream.id}).calibration: {err}") from None
        return zones, speeds

    def prepare_detector(self, single: bool = False) -> None:
        """Start-up work of the detector for this stream's frames (compiling the model for
        their input size), where the detector has any: before the first frame, not on it.
        `single`: for `detect` one frame at a time (live), not `detect_frames` (review)."""
        self.detector.prepare(self.plan.input_size, self.plan.imgsz, single=single)

    def detect(self, picture: Picture) -> Detections:
        """The detector's objects in a full frame, through the plan's crop (or tiles, one
        inference each, merged) and input size."""
        plan = self.plan
        return plan.merge([self.detector.detect(crop, plan.imgsz)
                           for crop in plan.crops(picture)])

    def process(self, frame: Frame) -> FrameResult:
        """Every stage on one frame; the detector runs when the plan says it is due."""
        step = next(detection_steps([frame], lambda _: self.plan.due(), self.detect))
        return self.update(frame, step.detections, step.detect_s)

    def update(self, frame: Frame, detections: Detections | None,
               detect_s: float = 0.0) -> FrameResult:
        """Track and count one frame after the detection step (stream/detect/step.py): its
        detections, or None on a frame the model skipped (the tracks' predicted boxes stand
        in); `detect_s`, the step's time for it, goes into the result's timings.

        Detections go through the stream's `DetectionPolicy` (`self.policy`: aliases, class
        filter, score floors, class-agnostic and contained-box suppression) first, so this is
        also the entry for detections made elsewhere: a detector's own output, or detections
        cached from a permissive run of the model (`policy_config.permissive`), which the
        policy reduces to what this config's detector would have given (`lanewatch tune`)."""
        t1 = time.perf_counter()
        detected = detections is not None
        if detected:
            detections = self.policy.apply(detections)
            tracked = self.tracker.update(detections, frame.pts_s)
            rows, confirmed = tracked.detections, tracked.confirmed
            tracks = tracked.confirmed_detections
            self._last_tracked = rows
        else:
            prediction = self.tracker.predict(frame.pts_s)
            rows = self._predicted_rows(prediction.ids, prediction.xyxy)
            confirmed, detections = prediction.confirmed, rows
            tracks = rows.select(confirmed)
        t2 = time.perf_counter()
        update = self.analytics.update(rows, frame.pts_s, frame.index, confirmed)
        t3 = time.perf_counter()
        return FrameResult(frame, detections, tracks, update,
                           StageTimings(detect_s, t2 - t1, t3 - t2), detected)

    def _predicted_rows(self, ids: np.ndarray, xyxy: np.ndarray) -> Detections:
        """The last tracked rows of these tracks (class, score), moved to their predicted
        boxes; masks move by the box's shift (a whole-pixel translation)."""
        last = self._last_tracked
        if len(ids) == 0 or last.tracker_id is None:
            return Detections.empty(self.detector.class_names)
        order = np.argsort(last.tracker_id)
        rows = last.select(order[np.searchsorted(last.tracker_id, ids, sorter=order)])
        masks = None if rows.masks is None else _shift_masks(rows.masks, xyxy - rows.xyxy)
        return Detections(xyxy=xyxy.astype(np.float32), confidence=rows.confidence,
                          class_id=rows.class_id, class_names=rows.class_names, masks=masks,
                          tracker_id=rows.tracker_id)


def _shift_masks(masks: np.ndarray, shift_xyxy: np.ndarray) -> np.ndarray:
    """Each mask translated by its box's centre shift, rounded to whole pixels."""
    out = np.zeros_like(masks)
    height, width = masks.shape[1:]
    for i, (dx1, dy1, dx2, dy2) in enumerate(shift_xyxy):
        dx, dy = round((dx1 + dx2) / 2), round((dy1 + dy2) / 2)
        if abs(dx) >= width or abs(dy) >= height:
            continue  # moved out of the frame
        src = masks[i, max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
        out[i, max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out
