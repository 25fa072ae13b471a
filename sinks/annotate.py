"""Annotated frames: boxes or masks, class/id labels, fading motion trails, lanes with counts.

Boxes, masks and labels use supervision's annotators; trails and the lane overlay are drawn here
(supervision's trace annotator does not fade, and lanes carry our own live counts). Each lane is
drawn in its palette colour (the dashboard chart's, sinks/overlay_layout.py), with an arrow on
its counting line for the counted direction and its count label placed off the line and off
the vehicles; optionally each track that crossed shows its spot speed.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace

import cv2
import numpy as np
import supervision as sv

from lanewatch.sinks.overlay_layout import (
    LabelSpots,
    choose_spot,
    direction_arrows,
    label_spots,
    lane_color_bgr,
)
from lanewatch.sinks.results import FrameResult
from lanewatch.trackers.analytics.lane_analytics import LaneState
from lanewatch.trackers.analytics.lanes import Lane
from lanewatch.trackers.detections import Anchor, Detections

_CONGESTED_COLOR = (40, 40, 230)  # BGR red
_SPEEDS_KEPT = 512  # tracks whose speed is remembered (older ones dropped first)


class SpeedMemory:
    """Each track's spot speed at its last crossing, for speed labels: bounded (the oldest
    tracks are forgotten first). The live video records every result's crossings here, also
    of results it never draws (sinks/live_video.py), and its annotators read it."""

    def __init__(self) -> None:
        self._speeds: dict[int, float] = {}

    def record(self, crossings) -> None:
        for event in crossings:
            if event.speed_kmh is not None:
                self._speeds.pop(event.track_id, None)  # re-inserted last: the newest
                self._speeds[event.track_id] = event.speed_kmh
        while len(self._speeds) > _SPEEDS_KEPT:
            del self._speeds[next(iter(self._speeds))]

    def get(self, track_id: int) -> float | None:
        return self._speeds.get(track_id)

    def as_dict(self) -> dict[int, float]:
        return dict(self._speeds)
_TRAIL_LEVELS = 4  # alpha steps of a fading trail
_WALL_CLOCK_AFTER = 1e9  # presentation times beyond this are Unix times (live streams)


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


def scale_detections(detections: Detections, factor: float,
                     size: tuple[int, int]) -> Detections:
    """Detections in an image resized by `factor` to `size` (width, height)."""
    masks = detections.masks
    if masks is not None:
        masks = np.stack([cv2.resize(m.view(np.uint8), size, interpolation=cv2.INTER_NEAREST)
                          for m in masks]).astype(bool) if len(masks) else np.zeros(
            (0, size[1], size[0]), bool)
    return replace(detections, xyxy=(detections.xyxy * factor).astype(np.float32), masks=masks)


def scale_lane(lane: Lane, factor: float) -> Lane:
    """A lane's geometry in an image resized by `factor`."""
    return replace(lane, polygon=None if lane.polygon is None else lane.polygon * factor,
                   line=None if lane.line is None else lane.line * factor)


class FrameAnnotator:
    """Draws one stream's results onto a copy of the frame, or onto a smaller copy.

    With `output_width` below the frame's width, the frame is downscaled first and everything is
    drawn at that size: a live viewer asking for 640-pixel video costs a fraction of annotating
    the full frame and shrinking it afterwards.
    """

    def __init__(self, lanes: list[Lane], trail_seconds: float = 1.5, draw_masks: bool = True,
                 anchor: Anchor = Anchor.BOTTOM_CENTER, frame_size: tuple[int, int] = (1280, 720),
                 output_width: int | None = None, speed_labels: bool = False):
        self.factor = min(output_width / frame_size[0], 1.0) if output_width else 1.0
        self.output_size = (round(frame_size[0] * self.factor),
                            round(frame_size[1] * self.factor))
        self.lanes = [scale_lane(lane, self.factor) for lane in lanes]
        # Colours by the lane's place in the stream's list: the dashboard chart's table.
        self.lane_colors = [lane_color_bgr(i) for i in range(len(self.lanes))]
        self.speed_labels = speed_labels
        self.speeds = SpeedMemory()
        # Label candidates per (lane, label size): lines are static, only the boxes change.
        self._spots: dict[tuple[int, tuple[int, int]], LabelSpots] = {}
        self._records_speeds = True  # False: someone else records (`share_speeds`)
        self.anchor = anchor
        self.draw_masks = draw_masks
        self.trails = Trails(trail_seconds)
        scale = max(self.output_size) / 1280
        self._thickness = max(1, round(2 * scale))
        self._font_scale = 0.5 * scale
        self._boxes = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK,
                                      thickness=self._thickness)
        self._masks = sv.MaskAnnotator(color_lookup=sv.ColorLookup.TRACK, opacity=0.45)
        self._labels = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK,
                                         text_scale=0.45 * scale, text_padding=3)
        self._palette = sv.ColorPalette.DEFAULT
        self._fill_key = None
        self._fill: tuple[np.ndarray, np.ndarray | None] = (np.zeros(0), None)
        self._fill_roi = (0, 0, 0, 0)

    def annotate(self, result: FrameResult) -> np.ndarray:
        """A new BGR image (of `output_size`) with every overlay drawn."""
        tracks = result.tracks
        if self.factor < 1.0:
            image = result.frame.picture.resized(*self.output_size, cv2.INTER_AREA)
            tracks = scale_detections(tracks, self.factor, self.output_size)
        else:
            image = result.frame.picture.drawable()
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
            if self.speed_labels:
                self._draw_speeds(image, tracks, result.analytics.crossings)
        self._draw_trails(image, result.frame.pts_s)
        # Count labels last but the header: readable over trails, placed off the boxes.
        self._draw_lane_labels(image, result.analytics.lanes, tracks.xyxy)
        self._draw_header(image, result)
        return image

    def _draw_trails(self, image: np.ndarray, now: float) -> None:
        # Older segments are blended more transparently, in _TRAIL_LEVELS steps. A segment's
        # level comes from its older end's age; ages fall along a trail, so each track's
        # segments of one level are one run, drawn as one polyline.
        seconds = max(self.trails.seconds, 1e-6)
        for tid, pts in self.trails.items():
            if len(pts) < 2:
                continue
            txy = np.asarray(pts)  # (N, 3): time, x, y
            xy = np.rint(txy[:, 1:]).astype(np.int32)
            levels = np.clip(((now - txy[:-1, 0]) / seconds * _TRAIL_LEVELS).astype(int),
                             0, _TRAIL_LEVELS - 1)  # per segment
            color = self._palette.by_idx(tid).as_bgr()
            starts = np.flatnonzero(np.diff(levels, prepend=-1))
            for start, end in zip(starts, [*starts[1:], len(levels)]):
                self._blend_polyline(image, xy[start:end + 1], color,
                                     1.0 - levels[start] / _TRAIL_LEVELS)

    def _blend_polyline(self, image: np.ndarray, xy: np.ndarray, color: tuple,
                        alpha: float) -> None:
        # Blend only the rectangle the line covers: a rectangle around all trails is most
        # of the frame, and blending it cost more than everything else drawn.
        height, width = image.shape[:2]
        margin = self._thickness + 2
        x0, y0 = np.maximum(xy.min(axis=0) - margin, 0)
        x1, y1 = np.minimum(xy.max(axis=0) + margin + 1, (width, height))
        if x0 >= x1 or y0 >= y1:
            return
        roi = image[y0:y1, x0:x1]
        overlay = roi.copy()
        cv2.polylines(overlay, [xy - (x0, y0)], False, color, self._thickness + 1, cv2.LINE_AA)
        cv2.addWeighted(overlay, alpha, roi, 1 - alpha, 0, dst=roi)

    def share_speeds(self, memory: SpeedMemory) -> None:
        """Read speeds from `memory`, which its owner fills with every result's crossings
        (this annotator may draw only some of the results: the live video's)."""
        self.speeds, self._records_speeds = memory, False

    def _draw_speeds(self, image: np.ndarray, tracks: Detections, crossings) -> None:
        """Each track that crossed with a measured speed: "NN km/h" under its box."""
        if self._records_speeds:
            self.speeds.record(crossings)
        if tracks.tracker_id is None:
            return
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, self._font_scale
        for tid, (x0, _, x1, y1) in zip(tracks.tracker_id.tolist(), tracks.xyxy.tolist()):
            speed = self.speeds.get(tid)
            if speed is None:
                continue
            text = f"{speed:.0f} km/h"
            (w, h), base = cv2.getTextSize(text, font, scale, 1)
            x = int(np.clip((x0 + x1) / 2 - w / 2, 0, max(image.shape[1] - w - 1, 0)))
            y = int(min(y1 + 3, image.shape[0] - h - base - 2))
            cv2.rectangle(image, (x - 2, y), (x + w + 2, y + h + base + 2), (30, 30, 30), -1)
            cv2.putText(image, text, (x, y + h + 1), font, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)

    def _draw_lanes(self, image: np.ndarray, states: tuple[LaneState, ...]) -> None:
        by_name = {s.name: s for s in states}
        congested = tuple(bool(by_name.get(lane.name) and by_name[lane.name].congested)
                          for lane in self.lanes)
        fill, mask = self._lane_fill(image.shape, congested)
        if mask is not None:
            x, y, w, h = self._fill_roi
            roi = image[y:y + h, x:x + w]
            blended = cv2.addWeighted(fill[y:y + h, x:x + w], 0.18, roi, 0.82, 0)
            cv2.copyTo(blended, mask[y:y + h, x:x + w], roi)
        for lane, jam, color in zip(self.lanes, congested, self.lane_colors):
            if lane.polygon is not None:
                poly = lane.polygon.round().astype(np.int32)
                cv2.polylines(image, [poly], True, _CONGESTED_COLOR if jam else color,
                              self._thickness, cv2.LINE_AA)
        for lane, color in zip(self.lanes, self.lane_colors):
            if lane.line is not None:
                a, b = (tuple(p) for p in lane.line.round().astype(int))
                cv2.line(image, a, b, color, self._thickness + 1, cv2.LINE_AA)
                for arrow in direction_arrows(lane.line, lane.direction.value,
                                              max(12.0, 28.0 * self._font_scale / 0.5)):
                    cv2.arrowedLine(image, tuple(round(v) for v in arrow.tail),
                                    tuple(round(v) for v in arrow.tip), color,
                                    self._thickness, cv2.LINE_AA, tipLength=0.4)

    def _draw_lane_labels(self, image: np.ndarray, states: tuple[LaneState, ...],
                          boxes: np.ndarray) -> None:
        by_name = {s.name: s for s in states}
        # Each label also stays off the labels placed before it.
        taken = [np.asarray(boxes, np.float32).reshape(-1, 4)]
        for index, (lane, color) in enumerate(zip(self.lanes, self.lane_colors)):
            rect = self._draw_lane_label(image, index, by_name.get(lane.name),
                                         np.concatenate(taken), color)
            taken.append(np.asarray([rect], np.float32))

    def _lane_fill(self, shape, congested: tuple[bool, ...]):
        """Lane fill colours and mask; lanes are static, so rebuilt only when a flag changes."""
        key = (shape, congested)
        if self._fill_key != key:
            fill = np.zeros(shape, np.uint8)
            mask = np.zeros(shape[:2], np.uint8)
            for lane, jam, lane_color in zip(self.lanes, congested, self.lane_colors):
                if lane.polygon is not None:
                    poly = lane.polygon.round().astype(np.int32)
                    cv2.fillPoly(fill, [poly], _CONGESTED_COLOR if jam else lane_color)
                    cv2.fillPoly(mask, [poly], 255)
            self._fill_key = key
            self._fill = (fill, mask if mask.any() else None)
            self._fill_roi = cv2.boundingRect(mask)
        return self._fill

    def _draw_lane_label(self, image: np.ndarray, index: int, state: LaneState | None,
                         boxes: np.ndarray, color: tuple[int, int, int]) -> tuple:
        # Lanes are narrow at the counting line: two short lines (name + total, then detail).
        lane = self.lanes[index]
        total = sum(state.counts.values()) if state else 0
        detail = []
        if state is not None and len(state.counts) > 1:
            detail += [f"{label[:6]} {n}" for label, n in state.counts.items()]
        if state is not None and lane.polygon is not None:
            detail.append(f"occ {state.occupancy}")
        if state is not None and state.congested:
            detail.append("JAM")
        lines = [f"{lane.name}: {total}" if lane.line is not None else lane.name]
        if detail:
            lines.append(" ".join(detail))
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, self._font_scale
        sizes = [cv2.getTextSize(t, font, scale, 1) for t in lines]
        w = max(sz[0][0] for sz in sizes)
        line_h = max(sz[0][1] + sz[1] for sz in sizes) + 4
        # Off the counting line and off this frame's vehicles (the label box includes its
        # 3-pixel padding): sinks/overlay_layout.py tries a few spots around the line.
        size = (w + 6, line_h * len(lines) + 2)
        spots = self._spots.get((index, size))
        if spots is None:
            if len(self._spots) > 256:  # label widths vary with the counts: stay bounded
                self._spots.clear()
            others = tuple(o.line for o in self.lanes if o.line is not None and o is not lane)
            spots = self._spots[(index, size)] = label_spots(
                lane.line, lane.polygon, size, (image.shape[1], image.shape[0]),
                max(4, 2 * self._thickness), others)
        x0, y, x1, _ = choose_spot(spots, boxes)
        x = x0 + 3
        cv2.rectangle(image, (x0, y), (x1, y + line_h * len(lines) + 2), (30, 30, 30), -1)
        cv2.rectangle(image, (x0, y), (x0 + 2, y + line_h * len(lines) + 2), color, -1)
        for i, text in enumerate(lines):
            cv2.putText(image, text, (x, y + line_h * (i + 1) - 4), font, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)
        return x0, y, x1, y + line_h * len(lines) + 2

    def _draw_header(self, image: np.ndarray, result: FrameResult) -> None:
        total = sum(sum(s.counts.values()) for s in result.analytics.lanes)
        pts = result.frame.pts_s
        # Live frames carry wall-clock times: show the time of day, not 1.8e9 seconds.
        when = (time.strftime("%H:%M:%S", time.localtime(pts)) if pts > _WALL_CLOCK_AFTER
                else f"t={pts:6.2f}s")
        text = (f"{result.frame.stream_id}  {when}  "
                f"frame {result.frame.index}  tracks {len(result.tracks)}  crossings {total}")
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self._font_scale, 1)
        cv2.rectangle(image, (0, 0), (w + 12, h + base + 10), (30, 30, 30), -1)
        cv2.putText(image, text, (6, h + 5), cv2.FONT_HERSHEY_SIMPLEX, self._font_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
