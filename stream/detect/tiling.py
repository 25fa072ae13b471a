"""Tiled inference of a stream's detection area (`streams[].detection.tiles`): the area cut into
columns x rows overlapping tiles, each inferred at the stream's input size, and the tiles'
detections merged back into one frame's.

Small or distant vehicles cover few pixels once a wide frame is shrunk to the model's input
(a 1280 px frame at 640: each vehicle at half its size); a tile of half the width is shrunk
half as much. Each tile costs one inference, so 2x1 tiles cost about twice the model time of
one (`lanewatch bench` prints it).

Merging: a vehicle on a seam is seen by both tiles, whole by one and cut by the other's edge,
or cut by both when it is wider than the overlap. Two boxes of different tiles (of one class,
or of any class with agnostic suppression) are one object when
- they are duplicates: IoU above the model's `iou` (a vehicle inside the overlap, whole in
  both tiles);
- one is cut by its tile's inner edge and lies mostly (`_INSIDE` of its area) inside the other;
- both are cut, at facing edges of the same seam (one on its right, the other on its left, or
  bottom/top), overlap across the seam and line up along it (1-D IoU >= `_ALIGNED`).
Each group of such boxes becomes one: their union, the best score and its class, masks joined.
Edges of the whole area are not seams: a box cut there is cut in a single inference too.

The boxes merged are those the stream's DetectionPolicy could keep (its detected classes,
above its floor): the merge is then the same whichever detector threshold found them, so a
permissive run whose per-tile detections are merged with a candidate's policy gives that
candidate's result (`lanewatch tune`: a pass's `DetectedFrame.tiles`, joined by
`DetectionPlan.merge(tiles, candidate_policy)`; tested on the real footage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lanewatch.trackers.detection_policy import DetectionPolicy
from lanewatch.trackers.detections import Detections

_EDGE_PX = 2.0  # a box edge this close to a tile's inner edge is cut by it
_INSIDE = 0.8  # fraction of a cut box inside another box that makes them one
_ALIGNED = 0.5  # 1-D IoU along a seam of two boxes cut by it that makes them one


@dataclass(frozen=True)
class Tile:
    """One tile: a pixel rectangle of the frame (x1, y1, x2, y2: columns x1..x2-1), and which
    of its edges are seams (shared with a neighbouring tile), left, top, right, bottom."""

    box: tuple[int, int, int, int]
    seams: tuple[bool, bool, bool, bool]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


def tile_grid(area: tuple[int, int, int, int], tiles: tuple[int, int], overlap: float
              ) -> list[Tile]:
    """`tiles` (columns, rows) of equal size covering `area` (x1, y1, x2, y2 in the frame),
    neighbours overlapping by `overlap` of a tile's width or height; row by row. Equal sizes:
    the model is compiled once for the stream's tile size. Corners even where the area's are
    (crops of the decoder's 4:2:0 planes stay views)."""
    x1, y1, x2, y2 = area
    xs = _spans(x1, x2, tiles[0], overlap)
    ys = _spans(y1, y2, tiles[1], overlap)
    grid = []
    for row, (top, bottom) in enumerate(ys):
        for col, (left, right) in enumerate(xs):
            grid.append(Tile((left, top, right, bottom),
                             (col > 0, row > 0, col < len(xs) - 1, row < len(ys) - 1)))
    return grid


def _spans(start: int, end: int, n: int, overlap: float) -> list[tuple[int, int]]:
    """n equal spans of start..end, overlapping by `overlap` of their length."""
    length = end - start
    if n == 1:
        return [(start, end)]
    size = min(length, 2 * math.ceil(length / (n - (n - 1) * overlap) / 2))
    step = (length - size) / (n - 1)
    firsts = [start + min(2 * round(i * step / 2), length - size) for i in range(n)]
    return [(f, f + size) for f in firsts]


def restore_tile(detections: Detections, tile: Tile, frame_size: tuple[int, int]
                 ) -> Detections:
    """Detections on a tile's pixels, moved to frame coordinates (masks padded to the
    frame)."""
    x1, y1, x2, y2 = tile.box
    masks = detections.masks
    if masks is not None:
        width, height = frame_size
        full = np.zeros((len(masks), height, width), bool)
        full[:, y1:y2, x1:x2] = masks
        masks = full
    xyxy = detections.xyxy + np.asarray([x1, y1, x1, y1], np.float32)
    return Detections(xyxy=xyxy, confidence=detections.confidence,
                      class_id=detections.class_id, class_names=detections.class_names,
                      masks=masks, tracker_id=detections.tracker_id)


def merge_tiles(parts: list[Detections], tiles: list[Tile], iou: float, agnostic: bool,
                policy: DetectionPolicy | None = None) -> Detections:
    """One frame's detections from its tiles' (`parts[i]` on `tiles[i]`, in frame
    coordinates): objects seen by several tiles merged into one (see the module docstring).
    `policy`: only what it can keep takes part (its detected classes, above its floor)."""
    if len(parts) == 1:
        return parts[0]
    if policy is not None:
        parts = [_keepable(d, policy) for d in parts]
    everything = _concatenate(parts)
    n = len(everything)
    if n < 2:
        return everything
    tile = np.concatenate([np.full(len(d), i) for i, d in enumerate(parts)])
    boxes = everything.xyxy.astype(np.float64)
    cut = _cut_sides(boxes, tile, tiles)
    same = np.ones((n, n), bool) if agnostic else (
        everything.class_id[:, None] == everything.class_id[None, :])
    linked = same & (tile[:, None] != tile[None, :]) & _one_object(boxes, cut, iou)
    groups = _components(linked)
    if all(len(g) == 1 for g in groups):
        return everything
    return _union(everything, groups)


def _keepable(detections: Detections, policy: DetectionPolicy) -> Detections:
    keep = detections.confidence.astype(np.float32) > np.float32(policy.floor)
    classes = policy.detected_classes
    if classes is not None:
        keep &= np.isin(detections.class_id, np.fromiter(classes, np.int64, len(classes)))
    return detections if keep.all() else detections.select(keep)


def _concatenate(parts: list[Detections]) -> Detections:
    names = next((d.class_names for d in parts if d.class_names), {})
    masks = None
    if any(d.masks is not None for d in parts):
        masks = np.concatenate([d.masks for d in parts if d.masks is not None])
    return Detections(xyxy=np.concatenate([d.xyxy for d in parts]).astype(np.float32),
                      confidence=np.concatenate([d.confidence for d in parts]),
                      class_id=np.concatenate([d.class_id for d in parts]).astype(np.int32),
                      class_names=names, masks=masks)


def _cut_sides(boxes: np.ndarray, tile: np.ndarray, tiles: list[Tile]) -> np.ndarray:
    """(N, 4) bool: the box's left, top, right, bottom edge lies on a seam of its tile."""
    frame = np.asarray([t.box for t in tiles], np.float64)[tile]
    seams = np.asarray([t.seams for t in tiles], bool)[tile]
    near = np.abs(boxes - frame) <= _EDGE_PX
    return near & seams


def _one_object(boxes: np.ndarray, cut: np.ndarray, iou: float) -> np.ndarray:
    """(N, N) bool: boxes i and j are one object by geometry (any tiles, any classes)."""
    tl = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    br = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    overlap = np.clip(br - tl, 0, None)  # (N, N, 2): width and height of the intersection
    inter = overlap[..., 0] * overlap[..., 1]
    area = np.maximum(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), 1e-9)
    union = area[:, None] + area[None, :] - inter
    duplicate = inter / union > iou
    is_cut = cut.any(axis=1)
    inside = (inter / area[:, None] >= _INSIDE) & is_cut[:, None]  # i cut, mostly in j
    facing = np.zeros_like(duplicate)
    for axis, (low, high) in enumerate(((0, 2), (1, 3))):  # x: left/right, y: top/bottom
        other = 1 - axis
        lengths = boxes[:, other + 2] - boxes[:, other]
        along = overlap[..., other] / np.maximum(
            lengths[:, None] + lengths[None, :] - overlap[..., other], 1e-9)
        across = overlap[..., axis] > 0
        faces = cut[:, high][:, None] & cut[:, low][None, :]  # i cut at its far side, j near
        facing |= (faces | faces.T) & across & (along >= _ALIGNED)
    return duplicate | inside | inside.T | facing


def _components(linked: np.ndarray) -> list[list[int]]:
    """Connected groups of a symmetric link matrix, each in index order."""
    n = len(linked)
    group = list(range(n))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(linked, 1))):
        a, b = root(int(i)), root(int(j))
        if a != b:
            group[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    return list(members.values())


def _union(detections: Detections, groups: list[list[int]]) -> Detections:
    """One row per group: the union box, the best member's score and class, masks joined."""
    best = [max(g, key=lambda i: (detections.confidence[i], -i)) for g in groups]
    xyxy = np.asarray([[*detections.xyxy[g, :2].min(axis=0), *detections.xyxy[g, 2:].max(axis=0)]
                       for g in groups], np.float32)
    masks = None
    if detections.masks is not None:
        masks = np.stack([detections.masks[g].any(axis=0) for g in groups])
    return Detections(xyxy=xyxy, confidence=detections.confidence[best],
                      class_id=detections.class_id[best], class_names=detections.class_names,
                      masks=masks)
