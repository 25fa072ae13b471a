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

from lanewatch.trackers.bytetrack import kalman
from lanewatch.trackers.bytetrack.association import associate, mark_duplicates, paired_iou
from lanewatch.trackers.detections import Detections


class ByteTrackSettings(BaseModel):
    """Tuning knobs (the `tracker:` config section). Defaults follow Ultralytics' ByteTrack
    settings (looser score thresholds than the MOT17 paper, which suit quantised models and
    small distant vehicles), with the lost-track buffer in seconds instead of frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high_threshold: float = Field(0.25, gt=0, le=1, description="first-association score cut")
    low_threshold: float = Field(0.1, ge=0, lt=1, description="second-association score floor")
    new_track_threshold: float = Field(0.25, gt=0, le=1, description="score to start a track")
    match_threshold: float = Field(0.75, gt=0, le=1, description="max 1-IoU, first association")
    low_match_threshold: float = Field(0.5, gt=0, le=1, description="max 1-IoU, second association")
    unconfirmed_match_threshold: float = Field(0.7, gt=0, le=1, description="max 1-IoU, tentatives")
    lost_track_buffer_s: float = Field(1.0, ge=0, description="how long a lost track can return")
    fuse_score: bool = Field(True, description="weigh IoU by detection score")
    duplicate_iou: float = Field(0.85, gt=0, le=1, description="tracked/lost overlap that merges")
    refill_gaps: bool = Field(True, description="observation-centric re-update after a gap")
    min_hits: int = Field(5, ge=1, description="consecutive matches that confirm a new track")
    sparse_min_hits: int = Field(
        3, ge=1, description="when the model sees only some frames, this many consecutive "
        "matches also confirm a new track, if they span min_hits frames of the camera")
    tentative_iou_buffer: float = Field(
        0.3, ge=0, le=2, description="tentative tracks (velocity still unknown) match on boxes "
        "grown by this fraction per frame interval since the previous update")
    gap_iou_buffer: float = Field(
        0.2, ge=0, le=2, description="after skipped frames, confirmed tracks left unmatched get "
        "a second chance on boxes grown by this fraction per skipped frame")
    max_iou_buffer: float = Field(1.5, ge=0, le=5, description="cap on both buffers")

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

    Rows are the input detections that belong to a live track, in input order. Tentative tracks
    (not yet `min_hits` matches) are included with `confirmed` False: what they show is not
    reported as an object yet, but analytics can follow a new track from its first frame and
    count a crossing it made while tentative once it is confirmed (at a low processed frame
    rate, a fast vehicle may be confirmed only after it crossed).

    Attributes:
        detections: the rows, with tracker_id.
        detection_index: (M,) index of each row in the input detections.
        filtered_xyxy: (M, 4) the tracks' Kalman-filtered boxes (smoother than detections).
        confirmed: (M,) whether each row's track is confirmed.
    """

    detections: Detections
    detection_index: np.ndarray
    filtered_xyxy: np.ndarray
    confirmed: np.ndarray

    @property
    def confirmed_detections(self) -> Detections:
        """The rows of confirmed tracks only (what displays and reports show)."""
        return self.detections if self.confirmed.all() else self.detections.select(
            self.confirmed)


@dataclass(frozen=True)
class TrackPrediction:
    """Predicted boxes of the tracks seen at the last update (see `ByteTrack.predict`).

    Attributes:
        ids: (M,) track ids.
        xyxy: (M, 4) predicted boxes.
        confirmed: (M,) whether each track is confirmed.
    """

    ids: np.ndarray
    xyxy: np.ndarray
    confirmed: np.ndarray


class _Tracks:
    """Every live track (tracked, tentative or lost) in a few consolidated arrays, so that
    dropping or adding tracks costs a handful of array operations whatever the field count.

    Float columns: packed Kalman state (20, see kalman.py), last matched box (4), the Kalman
    state right after the last match (20), last-seen and start times (presentation seconds).
    """

    STATE, LAST_BOX, OBS_STATE = slice(0, 20), slice(20, 24), slice(24, 44)
    LAST_SEEN, START, WIDTH = 44, 45, 46

    def __init__(self) -> None:
        self.f = np.zeros((0, self.WIDTH))
        self.ids = np.zeros(0, np.int64)
        self.hits = np.zeros(0, np.int64)  # consecutive matches while tentative
        self.lost = np.zeros(0, bool)  # not matched in the last frame
        self.confirmed = np.zeros(0, bool)

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, ids, states, boxes, confirmed: bool, now: float) -> None:
        rows = np.empty((len(ids), self.WIDTH))
        rows[:, self.STATE] = rows[:, self.OBS_STATE] = states
        rows[:, self.LAST_BOX] = boxes
        rows[:, self.LAST_SEEN] = rows[:, self.START] = now
        self.f = np.concatenate([self.f, rows])
        self.ids = np.concatenate([self.ids, ids])
        self.hits = np.concatenate([self.hits, np.ones(len(ids), np.int64)])
        self.lost = np.concatenate([self.lost, np.zeros(len(ids), bool)])
        self.confirmed = np.concatenate([self.confirmed, np.full(len(ids), confirmed)])

    def keep(self, mask: np.ndarray) -> None:
        self.f, self.ids, self.hits = self.f[mask], self.ids[mask], self.hits[mask]
        self.lost, self.confirmed = self.lost[mask], self.confirmed[mask]


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
        tr = self._tracks
        first_frame = self._last_time is None
        # Whole frame steps since the last update: a skipped frame is a longer prediction,
        # pts jitter is not.
        steps = 1.0 if first_frame else max(
            round((timestamp_s - self._last_time) / self.frame_interval), 1)
        self._last_time = timestamp_s
        if len(tr):
            tr.f[:, tr.STATE] = kalman.predict(tr.f[:, tr.STATE], steps)
        f = tr.f

        scores = detections.confidence.astype(np.float64)
        det_boxes = detections.xyxy.astype(np.float64)
        predicted = kalman.xyah_to_xyxy(f)
        t_idx, d_idx, track_free, det_free = associate(
            predicted, tr.confirmed, tr.lost, det_boxes, scores,
            s.high_threshold, s.low_threshold, s.match_threshold, s.low_match_threshold,
            s.unconfirmed_match_threshold, s.fuse_score,
            min(s.tentative_iou_buffer * steps, s.max_iou_buffer),
            min(s.gap_iou_buffer * (steps - 1), s.max_iou_buffer))
        matched_boxes = det_boxes[d_idx]
        measurements = kalman.xyxy_to_xyah(matched_boxes)
        if s.refill_gaps and tr.lost[t_idx].any():
            self._refill_gaps(t_idx, measurements, timestamp_s)
        f[t_idx, tr.STATE] = f[t_idx, tr.OBS_STATE] = kalman.update(f[t_idx, tr.STATE],
                                                                    measurements)
        f[t_idx, tr.LAST_BOX] = matched_boxes
        f[t_idx, tr.LAST_SEEN] = timestamp_s
        tr.lost = track_free
        tr.hits[t_idx] += 1
        tr.confirmed |= tr.hits >= s.min_hits
        if s.sparse_min_hits < s.min_hits:
            self._confirm_sparse(t_idx, predicted[t_idx], matched_boxes, timestamp_s)

        # Tentative tracks die at their first miss; lost tracks expire after the buffer;
        # a lost track overlapping a matched one almost entirely is a duplicate (ByteTrack).
        drop = (~tr.confirmed & track_free) | (
            f[:, tr.LAST_SEEN] < timestamp_s - s.lost_track_buffer_s - 1e-9)
        mark_duplicates(kalman.xyah_to_xyxy(f), tr.lost, tr.confirmed, drop, t_idx,
                        f[:, tr.LAST_SEEN] - f[:, tr.START], s.duplicate_iou)
        out_rows = ~drop[t_idx]
        if not out_rows.all():
            t_idx, d_idx = t_idx[out_rows], d_idx[out_rows]
        out_ids, out_boxes = tr.ids[t_idx], kalman.xyah_to_xyxy(f[t_idx])
        out_confirmed = tr.confirmed[t_idx]
        if drop.any():
            tr.keep(~drop)

        # 4. New tracks from confident leftovers (confirmed at once on the very first frame,
        #    when nothing can be tentative, or when a single hit confirms).
        new = np.flatnonzero(det_free & (scores >= s.new_track_threshold))
        if len(new):
            states = kalman.initiate(kalman.xyxy_to_xyah(det_boxes[new]))
            ids = np.arange(self._next_id, self._next_id + len(new), dtype=np.int64)
            self._next_id += len(new)
            confirm_now = first_frame or s.min_hits <= 1
            tr.append(ids, states, det_boxes[new], confirm_now, timestamp_s)
            d_idx = np.concatenate([d_idx, new])
            out_ids = np.concatenate([out_ids, ids])
            out_boxes = np.concatenate([out_boxes, det_boxes[new]])
            out_confirmed = np.concatenate([out_confirmed, np.full(len(new), confirm_now)])

        order = np.argsort(d_idx, kind="stable")
        index = d_idx[order]
        return TrackerOutput(detections.with_tracks(index, out_ids[order]), index,
                             out_boxes[order], out_confirmed[order])

    def predict(self, timestamp_s: float) -> TrackPrediction:
        """Where the tracks matched at the last update are at `timestamp_s` (constant-velocity
        Kalman prediction), without changing any state: the frames between two detections when
        the detector runs only on every Nth frame. The next `update` sees the whole gap."""
        tr = self._tracks
        if self._last_time is None or not len(tr):
            return TrackPrediction(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, bool))
        live = ~tr.lost
        steps = max((timestamp_s - self._last_time) / self.frame_interval, 0.0)
        states = kalman.predict(tr.f[live, tr.STATE], steps)
        return TrackPrediction(tr.ids[live], kalman.xyah_to_xyxy(states), tr.confirmed[live])

    def _confirm_sparse(self, t_idx: np.ndarray, predicted: np.ndarray, matched: np.ndarray,
                        now: float) -> None:
        """Confirmation is evidence over time, not over model calls: a stream detecting every
        10th frame would need 1.3 s of matches for `min_hits`, and a fast vehicle is gone
        before. `sparse_min_hits` matches in a row also confirm a track when they span
        `min_hits` camera frames and the last one lies where the track's motion predicted it
        (their plain boxes overlap): a track that jumped to a neighbour on a grown box does not."""
        tr = self._tracks
        s = self.settings
        on_course = paired_iou(predicted, matched) > 0
        rows = t_idx[on_course]
        spans = now - tr.f[rows, tr.START] >= (s.min_hits - 1.5) * self.frame_interval
        tr.confirmed[rows] |= (tr.hits[rows] >= s.sparse_min_hits) & spans

    def _refill_gaps(self, t_idx: np.ndarray, z_new: np.ndarray, now: float) -> None:
        """Re-found tracks: replay the filter from their last observation through virtual
        observations on the straight path to the new one (OC-SORT's observation-centric
        re-update), so the velocity learnt while lost does not carry the prediction's error."""
        tr = self._tracks
        f = tr.f
        gaps = np.round((now - f[t_idx, tr.LAST_SEEN]) / self.frame_interval).astype(np.int64)
        sel = np.flatnonzero(tr.lost[t_idx] & (gaps > 1))
        if len(sel) == 0:
            return
        rows = t_idx[sel]
        f[rows, tr.STATE] = kalman.replay_gap(f[rows, tr.OBS_STATE],
                                              kalman.xyxy_to_xyah(f[rows, tr.LAST_BOX]),
                                              z_new[sel], gaps[sel])
