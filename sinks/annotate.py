"""Annotated frames: boxes or masks, class/id labels, fading motion trails, lanes with counts.

Boxes, masks and labels use supervision's annotators; trails and the lane overlay are drawn here
(supervision's trace annotator does not fade, and lanes carry our own live counts).
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
import supervision as sv

from lanewatch.stream.pipeline import FrameResult
from lanewatch.trackers.analytics import LaneState
from lanewatch.trackers.detections import Anchor, Detections
from lanewatch.trackers.lanes import Lane

_LANE_COLOR = (255, 200, 0)  # BGR cyan-ish
_CONGESTED_COLOR = (40, 40, 230)  # BGR red
_LINE_COLOR = (0, 230, 255)  # BGR yellow
_TRAIL_LEVELS = 4  # alpha steps of a fading trail


def to_supervision(detections: Detections) -> sv.Detections:
    """Our detections as supervision's type (for its annotators)."""
    names = detections.class_names
    return sv.Detections(
        xyxy=detections.xyxy.astype(np.float32),
        mask=detections.masks,
        confidence=detections.confidence,
        class_id=detections.class_id,
        tracker_id=detections.tracker_id,
        data={"class_name": np.array([names.get(int(c), str(c)) for c in detections.class_id])},
    )


class Trails:
    """Recent anchor positions per track, bounded in time (and so in memory)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._points: dict[int, deque[tuple[float, float, float]]] = {}

    def update(self, tracks: Detections, time_s: float, anchor: Anchor) -> None:
        """Add this frame's anchors and drop points (and tracks) older than the window."""
        if tracks.tracker_id is not None:
            for tid, (x, y) in zip(tracks.tracker_id.tolist(), tracks.anchors(anchor)):
                self._points.setdefault(tid, deque()).append((time_s, float(x), float(y)))
        horizon = time_s - self.seconds
        for tid in list(self._points):
            pts = self._points[tid]
            while pts and pts[0][0] < horizon:
                pts.popleft()
            if not pts:
                del self._points[tid]

    def items(self):
        """(track id, deque of (time, x, y)) pairs."""
        return self._points.items()

    def __len__(self) -> int:
        return len(self._points)


def _blend(image: np.ndarray, overlay: np.ndarray, mask: np.ndarray, alpha: float) -> None:
    """image[mask] = alpha*overlay + (1-alpha)*image, in place."""
    if mask.any():
        image[mask] = (overlay[mask] * alpha + image[mask] * (1 - alpha)).astype(np.uint8)


class FrameAnnotator:
    """Draws one stream's results onto a copy of the frame."""

    def __init__(self, lanes: list[Lane], trail_seconds: float = 1.5, draw_masks: bool = True,
                 anchor: Anchor = Anchor.BOTTOM_CENTER, frame_size: tuple[int, int] = (1280, 720)):
        self.lanes = lanes
        self.anchor = anchor
        self.draw_masks = draw_masks
        self.trails = Trails(trail_seconds)
        scale = max(frame_size) / 1280
        self._thickness = max(1, round(2 * scale))
        self._font_scale = 0.55 * scale
        self._boxes = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK,
                                      thickness=self._thickness)
        self._masks = sv.MaskAnnotator(color_lookup=sv.ColorLookup.TRACK, opacity=0.45)
        self._labels = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK,
                                         text_scale=0.45 * scale, text_padding=3)
        self._palette = sv.ColorPalette.DEFAULT

    def annotate(self, result: FrameResult) -> np.ndarray:
        """A new BGR image with every overlay drawn."""
        image = result.frame.image.copy()
        tracks = result.tracks
        self.trails.update(tracks, result.frame.pts_s, self.anchor)
        self._draw_lanes(image, result.analytics.lanes)
        if len(tracks):
            svd = to_supervision(tracks)
            if self.draw_masks and tracks.masks is not None:
                image = self._masks.annotate(image, svd)
            image = self._boxes.annotate(image, svd)
            labels = [f"#{tid} {name} {conf:.2f}" for tid, name, conf in
                      zip(tracks.tracker_id, svd.data["class_name"], tracks.confidence)]
            image = self._labels.annotate(image, svd, labels=labels)
        self._draw_trails(image, result.frame.pts_s)
        self._draw_header(image, result)
        return image

    def _draw_trails(self, image: np.ndarray, now: float) -> None:
        # Older segments are blended more transparently; a few alpha levels keep it cheap.
        seconds = max(self.trails.seconds, 1e-6)
        layers = [np.zeros_like(image) for _ in range(_TRAIL_LEVELS)]
        masks = [np.zeros(image.shape[:2], np.uint8) for _ in range(_TRAIL_LEVELS)]
        for tid, pts in self.trails.items():
            color = self._palette.by_idx(tid).as_bgr()
            for (t0, x0, y0), (_, x1, y1) in zip(pts, list(pts)[1:]):
                age = (now - t0) / seconds
                level = min(int(age * _TRAIL_LEVELS), _TRAIL_LEVELS - 1)
                p0, p1 = (round(x0), round(y0)), (round(x1), round(y1))
                cv2.line(layers[level], p0, p1, color, self._thickness + 1, cv2.LINE_AA)
                cv2.line(masks[level], p0, p1, 255, self._thickness + 1)
        for level in range(_TRAIL_LEVELS):
            _blend(image, layers[level], masks[level] > 0, 1.0 - level / _TRAIL_LEVELS)

    def _draw_lanes(self, image: np.ndarray, states: tuple[LaneState, ...]) -> None:
        by_name = {s.name: s for s in states}
        fill = np.zeros_like(image)
        fill_mask = np.zeros(image.shape[:2], np.uint8)
        for lane in self.lanes:
            state = by_name.get(lane.name)
            color = _CONGESTED_COLOR if state and state.congested else _LANE_COLOR
            if lane.polygon is not None:
                poly = lane.polygon.round().astype(np.int32)
                cv2.fillPoly(fill, [poly], color)
                cv2.fillPoly(fill_mask, [poly], 255)
                cv2.polylines(image, [poly], True, color, self._thickness, cv2.LINE_AA)
        _blend(image, fill, fill_mask > 0, 0.18)
        for lane in self.lanes:
            state = by_name.get(lane.name)
            if lane.line is not None:
                a, b = (tuple(p) for p in lane.line.round().astype(int))
                cv2.line(image, a, b, _LINE_COLOR, self._thickness + 1, cv2.LINE_AA)
            self._draw_lane_label(image, lane, state)

    def _draw_lane_label(self, image: np.ndarray, lane: Lane, state: LaneState | None) -> None:
        parts = [lane.name]
        if state is not None:
            parts += [f"{label} {n}" for label, n in state.counts.items()]
            if lane.polygon is not None:
                parts.append(f"occ {state.occupancy}")
            if state.congested:
                parts.append("CONGESTED")
        text = " | ".join(parts)
        anchor = lane.line.mean(axis=0) if lane.line is not None else lane.polygon.mean(axis=0)
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self._font_scale, 1)
        x = int(np.clip(anchor[0] - w / 2, 0, image.shape[1] - w - 1))
        y = int(np.clip(anchor[1] - 8, h + 4, image.shape[0] - base - 1))
        cv2.rectangle(image, (x - 3, y - h - 4), (x + w + 3, y + base + 1), (30, 30, 30), -1)
        cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, self._font_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)

    def _draw_header(self, image: np.ndarray, result: FrameResult) -> None:
        total = sum(sum(s.counts.values()) for s in result.analytics.lanes)
        text = (f"{result.frame.stream_id}  t={result.frame.pts_s:6.2f}s  "
                f"frame {result.frame.index}  tracks {len(result.tracks)}  crossings {total}")
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self._font_scale, 1)
        cv2.rectangle(image, (0, 0), (w + 12, h + base + 10), (30, 30, 30), -1)
        cv2.putText(image, text, (6, h + 5), cv2.FONT_HERSHEY_SIMPLEX, self._font_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
