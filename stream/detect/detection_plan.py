"""Which frames, and which part of each, a stream sends to the model (`streams[].detection`).

Three levers give a box more cameras: detect on every Nth frame only (the tracker predicts the
frames between), crop the region that holds the lanes (the model's input pixels go to the road,
and a dynamic model gets a smaller input), and a smaller input size per stream. `DetectionPlan`
applies them around any detector: `crops` before inference (the region, or its tiles for small
or distant vehicles: tiling.py), `merge` after it maps the results back to full-frame
coordinates and joins the tiles, so nothing downstream knows a crop happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lanewatch.sinks.frames import Picture
from lanewatch.stream.config.schema import DetectionSettings
from lanewatch.stream.detect.tiling import Tile, merge_tiles, restore_tile, tile_grid
from lanewatch.trackers.analytics.lanes import Lane
from lanewatch.trackers.detection_policy import DetectionPolicy
from lanewatch.trackers.detections import Detections


@dataclass(frozen=True)
class Region:
    """A pixel rectangle of the frame: columns x1..x2-1, rows y1..y2-1."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.x2 - self.x1, self.y2 - self.y1


def resolve_region(settings: DetectionSettings, lanes: list[Lane], coordinates: str,
                   frame_size: tuple[int, int]) -> Region | None:
    """The crop for a frame of `frame_size` (width, height), or None for the full frame.

    Raises ValueError (with what to change) when the region does not fit the frame or there
    are no lanes to take it from."""
    width, height = frame_size
    if settings.region == "full":
        return None
    if settings.region == "lanes":
        points = [p for lane in lanes for shape in (lane.polygon, lane.line)
                  if shape is not None for p in shape]
        if not points:
            raise ValueError("region 'lanes' needs at least one lane with a polygon or a line")
        xy = np.asarray(points, float)
        mx, my = settings.region_margin * width, settings.region_margin * height
        x1, y1 = xy.min(axis=0) - (mx, my)
        x2, y2 = xy.max(axis=0) + (mx, my)
    else:
        x1, y1, x2, y2 = settings.region
        if coordinates == "normalized":
            if max(x2, y2) > 1:
                raise ValueError(f"region {settings.region} is not in 0..1, but the stream uses "
                                 "normalized coordinates")
            x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
        elif x2 > width or y2 > height:
            raise ValueError(f"region {settings.region} is outside the {width}x{height} frame")
    # Even corners (rounded outwards): the crop is then cut from the decoder's 4:2:0 planes,
    # whose colour rows and columns cover two pixels each, without converting the frame.
    region = Region(max(0, _even_below(x1)), max(0, _even_below(y1)),
                    min(width, _even_above(x2)), min(height, _even_above(y2)))
    if region.size[0] < 32 or region.size[1] < 32:
        raise ValueError(f"region {region.size[0]}x{region.size[1]} px is too small for the "
                         "model (at least 32x32)")
    return None if region.size == (width, height) else region


def _even_below(value: float) -> int:
    return 2 * math.floor(value / 2)


def _even_above(value: float) -> int:
    return 2 * math.ceil(value / 2)


class DetectionPlan:
    """One stream's detection schedule, crop and tiles. `due` must be called once per frame,
    in order.

    A frame's detection: `crops` (one picture per tile; one for an untiled stream), each
    inferred at `imgsz`, then `merge` (the tiles' detections in frame coordinates, joined at
    the seams: stream/detect/tiling.py). `merge_iou`, `agnostic`: the suppression the seams are
    joined with (the model's `iou`, class-agnostic when the policy is); `policy`: the stream's
    DetectionPolicy, whose keepable boxes alone take part in joining."""

    def __init__(self, settings: DetectionSettings, region: Region | None,
                 frame_size: tuple[int, int], merge_iou: float = 0.7,
                 policy: DetectionPolicy | None = None):
        self.every_nth_frame = settings.every_nth_frame
        self.imgsz = settings.imgsz
        self.region = region
        self.frame_size = frame_size
        area = (0, 0, *frame_size) if region is None else (
            region.x1, region.y1, region.x2, region.y2)
        self.tiles: list[Tile] = tile_grid(area, settings.tiles, settings.tile_overlap)
        self.merge_iou = merge_iou
        self.policy = policy
        self._frames = 0

    def due(self) -> bool:
        """Whether the next frame goes to the model (the first one always does)."""
        due = self._frames % self.every_nth_frame == 0
        self._frames += 1
        return due

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of each picture the model is given: a tile of the region, or of
        the whole frame (a whole one without tiles)."""
        return self.tiles[0].size

    def crops(self, picture: Picture) -> list[Picture]:
        """The pictures the model sees for a frame: one per tile, row by row."""
        if len(self.tiles) == 1:
            return [self.crop(picture)]
        return [picture.cropped(*tile.box) for tile in self.tiles]

    def merge(self, parts: list[Detections] | tuple[Detections, ...],
              policy: DetectionPolicy | None = None) -> Detections:
        """The frame's detections from each tile's (in tile coordinates, `crops` order);
        `policy`: another policy than the plan's to join them for (the tiles of a permissive
        run joined for a candidate policy give what a run with its settings gives)."""
        if len(parts) != len(self.tiles):
            raise ValueError(f"{len(parts)} tiles' detections for a plan of {len(self.tiles)}")
        if len(parts) == 1:
            return self.restore(parts[0])
        restored = [restore_tile(d, tile, self.frame_size) for d, tile in zip(parts, self.tiles)]
        policy = self.policy if policy is None else policy
        agnostic = policy is not None and policy.agnostic_iou is not None
        return merge_tiles(restored, self.tiles, self.merge_iou, agnostic, policy)

    def crop(self, picture: Picture) -> Picture:
        """The part of a frame the model sees without tiles (the whole picture without a
        region)."""
        if self.region is None:
            return picture
        r = self.region
        return picture.cropped(r.x1, r.y1, r.x2, r.y2)

    def restore(self, detections: Detections) -> Detections:
        """Detections on the crop, moved to full-frame coordinates (masks padded to the frame)."""
        if self.region is None:
            return detections
        r = self.region
        masks = detections.masks
        if masks is not None:
            width, height = self.frame_size
            full = np.zeros((len(masks), height, width), bool)
            full[:, r.y1:r.y2, r.x1:r.x2] = masks
            masks = full
        xyxy = detections.xyxy + np.asarray([r.x1, r.y1, r.x1, r.y1], np.float32)
        return Detections(xyxy=xyxy, confidence=detections.confidence,
                          class_id=detections.class_id, class_names=detections.class_names,
                          masks=masks, tracker_id=detections.tracker_id)
