"""Which of a detector's boxes a stream keeps: `DetectionPolicy`, one place for the rules that
turn a model's raw classes and scores into the objects that are tracked and counted.

The rules, applied in this order by `DetectionPolicy.apply`:

1. aliases: a model class counted as another (a car the model scores as `cell phone`);
2. class filter: only the counted classes stay;
3. confidence floor: a box stays when its score is above its (counted) class's minimum, or the
   global minimum for a class without its own;
4. suppression among an alias's class (with aliases): greedy NMS over the boxes of each alias
   target class, because the detector's class-aware NMS never compared a `cell phone` box
   with the `car` box of the same vehicle; without it one car would be two tracks;
5. class-agnostic suppression (optional): greedy NMS across the kept classes, so one vehicle
   scored as `car` and as `truck` in overlapping boxes gives one box (the better one);
6. contained-box suppression (optional): a box mostly inside a better box of the same class
   goes (see `suppress_contained`).

Applying the policy to a detector's output is how both the review and the live service use
it (`StreamProcessor.update`); `lanewatch tune` applies many policies to detections cached
once from a permissive run of the model. Both rely on two properties, tested on real
footage in tests/test_detection_policy.py:

- Idempotence: `apply(apply(d)) == apply(d)`. Aliases map to classes that are not themselves
  aliased (checked here), so a second pass renames nothing; the filter and the floor keep
  what they kept; greedy NMS leaves no pair above its IoU threshold, so a second NMS keeps
  every box; a box that survived contained-box suppression is not mostly inside any better
  same-class box, and the second pass sees a subset of those boxes.
- Permissive equivalence: `apply(detector run at confidence c0 with no class filter)` equals
  `apply(detector run with this policy's own early filter)` whenever c0 is at most every
  floor of the policy. A YOLO detector's own NMS is greedy and class-aware: it visits boxes
  from the best score down and drops one when its IoU with an already kept box of the same
  class exceeds the threshold. Whether a box is kept therefore depends only on the boxes of
  its class that score higher. Lowering the score threshold adds only lower-scored boxes,
  which come later in that order and cannot change a better box's fate; the floor then removes
  them. Likewise a class filter removes whole classes, which class-aware NMS never compared
  with the others. So NMS-then-filter equals filter-then-NMS, box for box. This is why the
  class-agnostic NMS is part of the policy, after the filter and the floor, and not of the
  detector: across classes, a box below its class's floor could otherwise suppress a kept
  box of another class. (The equivalence needs the permissive run to stay under the
  detector's cap of 300 boxes per frame; at confidence 0.01 on traffic it does.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from lanewatch.trackers.detections import Detections, suppress_contained


@dataclass(frozen=True)
class DetectionPolicy:
    """The rules that select and relabel a frame's detections (see the module docstring).

    Attributes:
        classes: class ids counted (after aliasing); None keeps every class.
        confidence: global minimum score: a box stays when its score is above it (as a
            detector's threshold: strictly above).
        class_confidence: class id (after aliasing) -> its own minimum score, replacing
            `confidence` for that class (higher or lower).
        aliases: model class id -> the class id it is counted as. A target must not itself be
            aliased (no chains), and must be in `classes` when that is given.
        alias_iou: IoU above which a box of an alias target class is suppressed by a better
            box of that class (the model's NMS IoU; None: off, as without aliases).
        agnostic_iou: IoU above which a box is suppressed by a better box of any kept class
            (class-agnostic greedy NMS); None: off.
        suppress_contained: fraction of a box's area inside a better same-class box above
            which it is dropped; None: off.
    """

    classes: frozenset[int] | None = None
    confidence: float = 0.0
    class_confidence: Mapping[int, float] = field(default_factory=dict)
    aliases: Mapping[int, int] = field(default_factory=dict)
    alias_iou: float | None = None
    agnostic_iou: float | None = None
    suppress_contained: float | None = None

    def __post_init__(self) -> None:
        # Plain, immutable values: a policy can be shared between threads and streams.
        set_ = object.__setattr__
        if self.classes is not None:
            set_(self, "classes", frozenset(int(c) for c in self.classes))
        set_(self, "confidence", float(self.confidence))
        set_(self, "class_confidence", MappingProxyType(
            {int(k): float(v) for k, v in self.class_confidence.items()}))
        set_(self, "aliases", MappingProxyType(
            {int(k): int(v) for k, v in self.aliases.items()}))
        for name, value in [("confidence", self.confidence),
                            *((f"class_confidence[{k}]", v)
                              for k, v in self.class_confidence.items())]:
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in 0..1 (exclusive of 1), got {value}")
        for name, value in (("alias_iou", self.alias_iou), ("agnostic_iou", self.agnostic_iou),
                            ("suppress_contained", self.suppress_contained)):
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1] or None, got {value}")
        chained = sorted(set(self.aliases.values()) & set(self.aliases))
        if chained:
            raise ValueError(f"aliases: classes {chained} are both aliased and alias targets; "
                             "map every source straight to its final class")
        if self.classes is not None:
            outside = sorted(set(self.aliases.values()) - self.classes)
            if outside:
                raise ValueError(f"aliases: targets {outside} are not among the kept classes")

    def __hash__(self) -> int:  # the mappings are read-only views: hash their items
        return hash((self.classes, self.confidence, tuple(sorted(self.class_confidence.items())),
                     tuple(sorted(self.aliases.items())), self.agnostic_iou,
                     self.suppress_contained))

    @property
    def floor(self) -> float:
        """The lowest score any class keeps: a detector feeding this policy may drop boxes at
        or below it (its early threshold) without changing the result."""
        return min([self.confidence, *self.class_confidence.values()])

    @property
    def detected_classes(self) -> frozenset[int] | None:
        """The model classes a detector feeding this policy must keep: the counted classes
        and the classes aliased to them; None: every class."""
        if self.classes is None:
            return None
        return self.classes | {s for s, t in self.aliases.items() if t in self.classes}

    def apply(self, detections: Detections) -> Detections:
        """The detections this policy keeps, relabelled, in their input order (see the module
        docstring for the order of the rules)."""
        if len(detections) == 0:
            return detections
        class_id = detections.class_id
        if self.aliases:
            lookup = np.arange(max(int(class_id.max()), *self.aliases) + 1, dtype=np.int32)
            for source, target in self.aliases.items():
                lookup[source] = target
            renamed = lookup[class_id]
            if not np.array_equal(renamed, class_id):
                class_id = renamed
                detections = Detections(
                    xyxy=detections.xyxy, confidence=detections.confidence, class_id=class_id,
                    class_names=detections.class_names, masks=detections.masks,
                    tracker_id=detections.tracker_id)
        keep = self._kept(detections)
        if not keep.all():
            detections = detections.select(keep)
        if self.alias_iou is not None and self.aliases and len(detections) > 1:
            detections = self._suppress_within(detections, set(self.aliases.values()))
        if self.agnostic_iou is not None and len(detections) > 1:
            kept = greedy_nms(detections.xyxy, detections.confidence, self.agnostic_iou)
            if len(kept) < len(detections):
                detections = detections.select(np.sort(kept))  # input order, as the rest
        if self.suppress_contained is not None:
            detections = suppress_contained(detections, self.suppress_contained)
        return detections

    def _suppress_within(self, detections: Detections, classes: set[int]) -> Detections:
        """Greedy NMS inside each of these classes (at alias_iou); input order kept."""
        keep = np.ones(len(detections), bool)
        for cls in classes:
            rows = np.flatnonzero(detections.class_id == cls)
            if len(rows) > 1:
                kept = greedy_nms(detections.xyxy[rows], detections.confidence[rows],
                                  self.alias_iou)
                keep[rows] = False
                keep[rows[kept]] = True
        return detections if keep.all() else detections.select(keep)

    def _kept(self, detections: Detections) -> np.ndarray:
        """Rows of a counted class scoring above that class's floor."""
        class_id = detections.class_id
        # Compared as float32, as a detector compares its float32 scores with its threshold
        # (a float64 floor would round differently at the boundary).
        scores = detections.confidence.astype(np.float32, copy=False)
        if self.class_confidence:
            floors = np.full(len(detections), self.confidence, np.float32)
            for cls, value in self.class_confidence.items():
                floors[class_id == cls] = value
            keep = scores > floors
        else:
            keep = scores > np.float32(self.confidence)
        if self.classes is not None:
            keep &= (class_id[:, None] == self._class_array[None, :]).any(axis=1)
        return keep

    @property
    def _class_array(self) -> np.ndarray:
        """The kept class ids as an array (made once: `apply` runs on every frame)."""
        array = self.__dict__.get("_classes_cached")
        if array is None:
            array = np.fromiter(self.classes or (), np.int64)
            object.__setattr__(self, "_classes_cached", array)
        return array


def greedy_nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first (ties: input order). A
    box goes when its IoU with a kept, better box exceeds `iou_threshold`."""
    n = len(xyxy)
    if n == 0:
        return np.zeros(0, np.int64)
    boxes = np.asarray(xyxy, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    boxes = boxes[order]
    tl = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    br = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    union = area[:, None] + area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    suppressed = np.zeros(n, bool)
    for i in range(n):  # n is a frame's boxes: tens
        if not suppressed[i]:
            suppressed[i + 1:] |= iou[i, i + 1:] > iou_threshold
    return order[~suppressed]
