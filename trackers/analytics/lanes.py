"""The lane model: how lanes are configured (pydantic, validated) and resolved to pixels.

A lane has a name, an optional polygon (its region: occupancy, dwell, congestion) and an optional
counting line across it (a segment; crossings are counted per class and direction). Points are
pixels, or fractions 0..1 of the frame when the stream says `coordinates: normalized`.

Direction: "in" is a crossing from the left-hand side to the right-hand side of the line as seen
on screen when walking from its first point to its second (for a line drawn left to right, "in"
is moving down the image); "out" is the reverse. Each may get a label for reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lanewatch.trackers.analytics.geometry import polygon_area, polygon_is_simple
from lanewatch.trackers.detections import Anchor

Point = Annotated[tuple[float, float], Field(description="x, y")]


class Direction(str, Enum):
    """Which crossings of a counting line are counted."""

    BOTH = "both"
    IN = "in"
    OUT = "out"


class CongestionSettings(BaseModel):
    """When a lane is congested: occupancy, dwell or queue above a threshold for a minimum
    time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_occupancy: int | None = Field(None, ge=1, description="objects in the lane at once")
    min_dwell_s: float | None = Field(None, gt=0, description="longest stay of an object, s")
    min_queue: int | None = Field(None, ge=1, description="stopped vehicles in the lane at once")
    min_duration_s: float = Field(5.0, ge=0, description="condition must hold this long")
    clear_after_s: float | None = Field(
        None, ge=0,
        description="condition must be false this long to clear (default: min_duration_s)"
    )

    @model_validator(mode="after")
    def _needs_a_threshold(self) -> CongestionSettings:
        if self.min_occupancy is None and self.min_dwell_s is None and self.min_queue is None:
            raise ValueError("set min_occupancy, min_dwell_s, min_queue or several")
        return self


class LaneSpec(BaseModel):
    """One lane of a stream, as written in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="unique within the stream")
    polygon: list[Point] | None = Field(None, description="region, 3+ points")
    line: tuple[Point, Point] | None = Field(None, description="counting line: two points")
    direction: Direction = Field(Direction.BOTH, description="which crossings count")
    in_label: str = Field("in", min_length=1, description="report label of 'in' crossings")
    out_label: str = Field("out", min_length=1, description="report label of 'out' crossings")
    congestion: CongestionSettings | None = None
    max_dwell_s: float | None = Field(
        None, gt=0, description="alert when a vehicle stays in the lane longer than this "
        "(needs a polygon)")

    @model_validator(mode="after")
    def _check_geometry(self) -> LaneSpec:
        if self.polygon is None and self.line is None:
            raise ValueError("a lane needs a polygon, a counting line, or both")
        if self.polygon is not None:
            poly = np.asarray(self.polygon, float)
            if len(poly) < 3:
                raise ValueError(f"polygon needs at least 3 points, got {len(poly)}")
            if not polygon_is_simple(poly):
                raise ValueError("polygon edges cross each other; list the points in order")
            if polygon_area(poly) == 0:
                raise ValueError("polygon has zero area (its points are on one line)")
        if self.line is not None and tuple(self.line[0]) == tuple(self.line[1]):
            raise ValueError("line needs two distinct points")
        if self.congestion is not None and self.polygon is None:
            raise ValueError("congestion needs a polygon (occupancy is measured inside it)")
        if self.max_dwell_s is not None and self.polygon is None:
            raise ValueError("max_dwell_s needs a polygon (dwell is measured inside it)")
        if self.in_label == self.out_label:
            raise ValueError("in_label and out_label must differ")
        return self

    def points(self) -> list[tuple[float, float]]:
        """Every coordinate pair of the lane (for range checks)."""
        return list(self.polygon or []) + list(self.line or [])


class WrongWaySettings(BaseModel):
    """When a track counts as driving the wrong way (`counting.wrong_way:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="watch one-way lanes (polygon + in/out line)")
    min_distance_m: float = Field(
        8.0, gt=0, description="distance against the lane's direction, calibrated streams")
    min_distance_heights: float = Field(
        2.0, gt=0, description="the same in heights of the vehicle's box, uncalibrated streams")


class CountingSettings(BaseModel):
    """How crossings, occupancy and intervals are computed (the `counting:` config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    anchor: Anchor = Field(Anchor.BOTTOM_CENTER, description="point of a box that must cross")
    hysteresis: float = Field(
        0.1, ge=0, le=2, description="how far past the line, as a fraction of box height"
    )
    min_hysteresis_px: float = Field(2.0, ge=0, description="floor of that distance, pixels")
    confirm_frames: int = Field(3, ge=1, description="frames a track needs before it counts")
    min_confidence: float = Field(
        0.4, ge=0, le=1,
        description="boxes scored below this keep a track alive but never settle its side "
        "of a line (partial, occluded boxes have unreliable anchors)",
    )
    interval_s: float = Field(60.0, gt=0, description="length of a count interval, seconds")
    forget_after_s: float = Field(10.0, gt=0, description="drop state of unseen tracks after")
    stopped_below_heights_per_s: float = Field(
        0.15, ge=0, description="uncalibrated streams: a vehicle moving less than this many "
        "of its box heights per second is stopped (queue length)")
    wrong_way: WrongWaySettings = Field(default_factory=WrongWaySettings)


@dataclass(frozen=True)
class Lane:
    """A lane resolved to pixel coordinates for a given frame size."""

    name: str
    polygon: np.ndarray | None  # (K, 2) float pixels
    line: np.ndarray | None  # (2, 2) float pixels: start, end
    direction: Direction
    in_label: str
    out_label: str
    congestion: CongestionSettings | None
    max_dwell_s: float | None = None

    def labels(self) -> list[str]:
        """Direction labels that this lane counts, in report order."""
        if self.line is None:
            return []
        return {
            Direction.BOTH: [self.in_label, self.out_label],
            Direction.IN: [self.in_label],
            Direction.OUT: [self.out_label],
        }[self.direction]


CoordinateMode = Literal["pixels", "normalized"]


def to_pixels(points, coordinates: CoordinateMode, width: int, height: int,
              what: str) -> np.ndarray:
    """(K, 2) pixel coordinates of configured points, checking they fit in a width x height
    frame; ValueError naming `what` (e.g. "lane 'lane1'") and the offending point."""
    for x, y in points:
        if coordinates == "normalized" and not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError(
                f"{what}: point ({x:g}, {y:g}) is not in 0..1, but the stream uses normalized "
                "coordinates (use `coordinates: pixels` for pixel values)")
        if coordinates == "pixels" and not (0 <= x <= width and 0 <= y <= height):
            raise ValueError(
                f"{what}: point ({x:g}, {y:g}) is outside the {width}x{height} frame (pixel "
                "coordinates; use `coordinates: normalized` for 0..1 values)")
    scale = np.array([width, height], float) if coordinates == "normalized" else np.ones(2)
    return np.asarray(points, float).reshape(-1, 2) * scale


def resolve_lanes(
    specs: list[LaneSpec], coordinates: CoordinateMode, width: int, height: int
) -> list[Lane]:
    """Convert configured lanes to pixels, checking they fit in a width x height frame.

    Raises ValueError naming the lane and the offending point.
    """
    lanes = []
    for spec in specs:
        what = f"lane '{spec.name}'"
        to_pixels(spec.points(), coordinates, width, height, what)  # checks every point
        lanes.append(
            Lane(
                name=spec.name,
                polygon=None if spec.polygon is None else to_pixels(
                    spec.polygon, coordinates, width, height, what),
                line=None if spec.line is None else to_pixels(
                    spec.line, coordinates, width, height, what),
                direction=spec.direction,
                in_label=spec.in_label,
                out_label=spec.out_label,
                congestion=spec.congestion,
                max_dwell_s=spec.max_dwell_s,
            )
        )
    return lanes
