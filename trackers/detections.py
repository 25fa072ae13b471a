"""The detections type that crosses every stage boundary: detector -> tracker -> analytics -> sinks.

A small frozen struct of numpy arrays (one row per object). Ultralytics result objects never leave
the detector adapter; supervision's `Detections` is produced from this type only where its
annotators need it (see `lanewatch.sinks.annotate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Anchor(str, Enum):
    """Which point of a box stands for the object's position on the road."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"


@dataclass(frozen=True, eq=False)
class Detections:
    """Objects found in one frame.

    Attributes:
        xyxy: (N, 4) float32 boxes in pixels, x1 y1 x2 y2.
        confidence: (N,) float32 scores in 0..1.
        class_id: (N,) int32 class indices into `class_names`.
        class_names: mapping of class index to name (shared, from the model).
        masks: optional (N, H, W) bool instance masks at frame resolution.
        tracker_id: optional (N,) int64 track ids, set by a tracker.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: dict[int, str] = field(default_factory=dict)
    masks: np.ndarray | None = None
    tracker_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        for name in ("confidence", "class_id"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, xyxy has {n}")
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"masks has {len(self.masks)} rows, xyxy has {n}")
        if self.tracker_id is not None and len(self.tracker_id) != n:
            raise ValueError(f"tracker_id has {len(self.tracker_id)} rows, xyxy has {n}")

    @classmethod
    def empty(cls, class_names: dict[int, str] | None = None) -> Detections:
        """No objects."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
            class_names=class_names or {},
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, index: np.ndarray) -> Detections:
        """Rows picked by a boolean mask or an integer index array, in that order."""
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            class_names=self.class_names,
            masks=None if self.masks is None else self.masks[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
        )

    def with_tracks(self, index: np.ndarray, tracker_id: np.ndarray) -> Detections:
        """Rows `index` (input order of a tracker) labelled with their track ids."""
        picked = self.select(index)
        return Detections(
            xyxy=picked.xyxy,
            confidence=picked.confidence,
            class_id=picked.class_id,
            class_names=self.class_names,
            masks=picked.masks,
            tracker_id=np.asarray(tracker_id, np.int64),
        )

    def class_name(self, class_id: int) -> str:
        """Human name of a class index (falls back to the number)."""
        return self.class_names.get(int(class_id), str(int(class_id)))

    def anchors(self, anchor: Anchor = Anchor.BOTTOM_CENTER) -> np.ndarray:
        """(N, 2) float points that represent each object's position."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        if anchor is Anchor.BOTTOM_CENTER:
            y = self.xyxy[:, 3]
        elif anchor is Anchor.TOP_CENTER:
            y = self.xyxy[:, 1]
        else:
            y = (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2
        return np.stack([x, y], axis=1).astype(np.float64)


def suppress_contained(detections: Detections, threshold: float) -> Detections:
    """Drop boxes lying mostly inside a higher-scoring box of the same class.

    Detectors often return, next to an object's full box, a second box on part of it (the upper
    body of a person behind a bicycle, the cab of a truck). Plain NMS keeps both when their IoU
    is moderate; tracked, they become two tracks and the object is counted twice. A box is
    dropped when at least `threshold` of its area is inside a better-scored same-class box.
    """
    n = len(detections)
    if n < 2:
        return detections
    boxes = detections.xyxy.astype(np.float64)
    tl = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    br = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = np.maximum(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), 1e-9)
    contained = inter / area[:, None] >= threshold  # [i, j]: i mostly inside j
    same_class = detections.class_id[:, None] == detections.class_id[None, :]
    order = np.argsort(-detections.confidence, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    better = rank[None, :] < rank[:, None]  # [i, j]: j is scored higher than i
    drop = (contained & same_class & better).any(axis=1)
    return detections if not drop.any() else detections.select(~drop)
