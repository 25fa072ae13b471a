"""ByteTrack (Zhang et al., 2022), written for lanewatch.

Tracks live in a struct of arrays (ids, Kalman states, flags), so prediction, IoU and updates run
over all tracks at once. Time is explicit: `update` takes the frame's presentation time, the
Kalman step follows the real gap between frames, and lost tracks are kept for a buffer given in
seconds. Each output row is an input detection (same box, same index) with its track id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.optimize import linear_sum_assignment

from lanewatch.trackers import kalman
from lanewatch.trackers.detections import Detections


class ByteTrackSettings(BaseModel):
    """Tuning knobs (the `tracker:` config section). Defaults follow Ultralytics' ByteTrack
    settings (looser score thresholds than the MOT17 paper, which suit quantised models and
    small distant vehicles), with the lost-track buffer in seconds instead of frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high_threshold: float = Field(0.25, gt=0, le=1, description="first-association score cut")
    low_threshold: float = Field(0.1, ge=0, lt=1, description="second-association score floor")
    new_track_threshold: float = Field(0.25, gt=0, le=1, description="score to start a track")
    match_threshold: float = Field(0.8, gt=0, le=1, description="max 1-IoU, first association")
    low_match_threshold: float = Field(0.5, gt=0, le=1, description="max 1-IoU, second association")
    unconfirmed_match_threshold: float = Field(0.7, gt=0, le=1, description="max 1-IoU, tentatives")
    lost_track_buffer_s: float = Field(1.0, ge=0, description="how long a lost track can return")
    fuse_score: bool = Field(True, description="weigh IoU by detection score")
    duplicate_iou: float = Field(0.85, gt=0, le=1, description="tracked/lost overlap that merges")

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> ByteTrackSettings:
        if self.low_threshold >= self.high_threshold:
            raise ValueError(
                f"low_threshold ({self.low_threshold}) must be below high_threshold "
                f"({self.high_threshold})")
        return self


@dataclass(frozen=True)
class TrackerOutput:
    """What the tracker returns for a frame.

    Attributes:
        detections: the input rows matched to confirmed tracks, in input order, with tracker_id.
        detection_index: (M,) index of each returned row in the input detections.
    """

    detections: Detections
    detection_index: np.ndarray


class _Tracks:
    """Struct of arrays holding every live track (tracked, tentative or lost)."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.lost = np.zeros(0, bool)  # not matched in the last frame
        self.confirmed = np.zeros(0, bool)
        self.last_seen = np.zeros(0)  # presentation time of the last match
        self.start = np.zeros(0)  # presentation time of the first detection

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, ids, mean, cov, confirmed, now: float) -> None:
        n = len(ids)
        self.ids = np.concatenate([self.ids, ids])
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        self.lost = np.concatenate([self.lost, np.zeros(n, bool)])
        self.confirmed = np.concatenate([self.confirmed, confirmed])
        self.last_seen = np.concatenate([self.last_seen, np.full(n, now)])
        self.start = np.concatenate([self.start, np.full(n, now)])

    def keep(self, mask: np.ndarray) -> None:
        for name in ("ids", "mean", "cov", "lost", "confirmed", "last_seen", "start"):
            setattr(self, name, getattr(self, name)[mask])

    def boxes(self) -> np.ndarray:
        return kalman.xyah_to_xyxy(self.mean)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU between (N, 4) and (M, 4) xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _assign(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching keeping pairs with cost <= threshold; returns (rows, cols)."""
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = linear_sum_assignment(np.where(cost > threshold, 1e6, cost))
    ok = cost[rows, cols] <= threshold
    return rows[ok], cols[ok]


class ByteTrack:
    """Multi-object tracker; one instance per stream (ids are never shared between instances)."""

    def __init__(self, settings: ByteTrackSettings | None = None, frame_rate: float = 30.0):
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        self.settings = settings or ByteTrackSettings()
        self.frame_interval = 1.0 / frame_rate
        self._tracks = _Tracks()
        self._next_id = 1
        self._last_time: float | None = None

    def reset(self) -> None:
        """Forget every track (ids keep increasing: an id is never reused)."""
        self._tracks = _Tracks()
        self._last_time = None

    @property
    def active_track_count(self) -> int:
        """Live tracks, including lost ones still inside the buffer."""
        return len(self._tracks)

    def update(self, detections: Detections, timestamp_s: float) -> TrackerOutput:
        """Associate one frame's detections with the tracks; returns confirmed matched rows."""
        s = self.settings
        tracks = self._tracks
        first_frame = self._last_time is None
        steps = 1.0 if first_frame else max((timestamp_s - self._last_time) / self.frame_interval, 1.0)
        # Snap to whole frame steps: pts jitter must not change the motion model.
        steps = float(round(steps))
        self._last_time = timestamp_s

        tracks.mean, tracks.cov = kalman.predict(tracks.mean, tracks.cov, steps)

        scores = detections.confidence
        high = np.flatnonzero(scores >= s.high_threshold)
        low = np.flatnonzero((scores > s.low_threshold) & (scores < s.high_threshold))
        det_boxes = detections.xyxy.astype(np.float64)
        track_boxes = tracks.boxes()

        matched_track: list[np.ndarray] = []
        matched_det: list[np.ndarray] = []

        # 1. Confirmed tracks (tracked or lost) against high-score detections.
        pool = np.flatnonzero(tracks.confirmed)
        iou = box_iou(track_boxes[pool], det_boxes[high])
        sim = iou * scores[high][None, :] if s.fuse_score else iou
        r, c = _assign(1.0 - sim, s.match_threshold)
        matched_track.append(pool[r])
        matched_det.append(high[c])
        remaining_high = np.setdiff1d(high, high[c], assume_unique=True)

        # 2. Still-unmatched tracks that were tracked last frame against low-score detections.
        unmatched_pool = np.setdiff1d(pool, pool[r], assume_unique=True)
        second = unmatched_pool[~tracks.lost[unmatched_pool]]
        iou = box_iou(track_boxes[second], det_boxes[low])
        r2, c2 = _assign(1.0 - iou, s.low_match_threshold)
        matched_track.append(second[r2])
        matched_det.append(low[c2])

        # 3. Tentative tracks against the high-score detections left over.
        tentative = np.flatnonzero(~tracks.confirmed)
        iou = box_iou(track_boxes[tentative], det_boxes[remaining_high])
        sim = iou * scores[remaining_high][None, :] if s.fuse_score else iou
        r3, c3 = _assign(1.0 - sim, s.unconfirmed_match_threshold)
        matched_track.append(tentative[r3])
        matched_det.append(remaining_high[c3])
        remaining_high = np.setdiff1d(remaining_high, remaining_high[c3], assume_unique=True)

        t_idx = np.concatenate(matched_track).astype(np.int64)
        d_idx = np.concatenate(matched_det).astype(np.int64)

        # Kalman correction of every matched track in one batch.
        measurements = kalman.xyxy_to_xyah(det_boxes[d_idx])
        tracks.mean[t_idx], tracks.cov[t_idx] = kalman.update(
            tracks.mean[t_idx], tracks.cov[t_idx], measurements
        )
        was_matched = np.zeros(len(tracks), bool)
        was_matched[t_idx] = True
        tracks.lost = ~was_matched
        tracks.confirmed[t_idx] = True  # a second hit confirms a tentative track
        tracks.last_seen[t_idx] = timestamp_s

        matched_ids = tracks.ids[t_idx]

        # Tentative tracks die at their first miss; lost tracks expire after the buffer.
        expired = tracks.last_seen < timestamp_s - s.lost_track_buffer_s - 1e-9
        tracks.keep(~((~tracks.confirmed & ~was_matched) | expired))

        # 4. New tracks from confident leftovers (confirmed at once on the very first frame).
        new = remaining_high[scores[remaining_high] >= s.new_track_threshold]
        if len(new):
            mean, cov = kalman.initiate(kalman.xyxy_to_xyah(det_boxes[new]))
            ids = np.arange(self._next_id, self._next_id + len(new), dtype=np.int64)
            self._next_id += len(new)
            tracks.append(ids, mean, cov, np.full(len(new), first_frame), timestamp_s)
            if first_frame:
                d_idx = np.concatenate([d_idx, new])
                matched_ids = np.concatenate([matched_ids, ids])

        self._remove_duplicates()
        alive = np.isin(matched_ids, tracks.ids)
        order = np.argsort(d_idx[alive], kind="stable")
        index = d_idx[alive][order]
        return TrackerOutput(
            detections=detections.with_tracks(index, matched_ids[alive][order]),
            detection_index=index,
        )

    def _remove_duplicates(self) -> None:
        """Drop the younger of a tracked/lost pair that overlap almost entirely (ByteTrack)."""
        tracks = self._tracks
        tracked = np.flatnonzero(~tracks.lost & tracks.confirmed)
        lost = np.flatnonzero(tracks.lost)
        if len(tracked) == 0 or len(lost) == 0:
            return
        iou = box_iou(tracks.boxes()[tracked], tracks.boxes()[lost])
        a, b = np.nonzero(iou > self.settings.duplicate_iou)
        drop = np.zeros(len(tracks), bool)
        for ti, li in zip(tracked[a], lost[b]):
            age_t = tracks.last_seen[ti] - tracks.start[ti]
            age_l = tracks.last_seen[li] - tracks.start[li]
            drop[li if age_t > age_l else ti] = True
        tracks.keep(~drop)
