"""Turning movements (origin-destination): which zone a track came from and which it left by.

An intersection's approaches are zones (polygons, usually one per arm covering its entry and
exit lanes). A track's origin is the first zone it is established in (seen inside for
`min_frames` frames in a row, so jitter on a border does not make a visit); its movement is
counted the moment it is established in a different zone, or in its origin again after having
left it for `min_frames` (a U-turn). Each track makes at most one movement. A track that
disappears with an origin but no destination is reported as unfinished, per origin zone: a
tracking loss or a vehicle that parked, which the counts alone would hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lanewatch.trackers.analytics.geometry import points_in_polygon, polygon_area, polygon_is_simple

Point = tuple[float, float]


class ZoneSpec(BaseModel):
    """A named region where tracks come from or go to (an intersection approach)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="unique within the stream, e.g. north")
    polygon: list[Point] = Field(description="region, 3+ points")
    max_dwell_s: float | None = Field(
        None, gt=0, description="alert when a vehicle stays in the zone longer than this")

    @model_validator(mode="after")
    def _check(self) -> ZoneSpec:
        poly = np.asarray(self.polygon, float)
        if len(poly) < 3:
            raise ValueError(f"polygon needs at least 3 points, got {len(poly)}")
        if not polygon_is_simple(poly) or polygon_area(poly) == 0:
            raise ValueError("polygon edges cross each other or it has no area; list the "
                             "points in order around the zone")
        return self


class MovementSpec(BaseModel):
    """A name for one origin-destination pair (e.g. north-left)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, description="report name, e.g. north-left")
    from_zone: str = Field(alias="from", description="origin zone")
    to_zone: str = Field(alias="to", description="destination zone (the origin for a U-turn)")


class TurningSettings(BaseModel):
    """Turning-movement counting (`streams[].turning:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zones: list[ZoneSpec] = Field(min_length=2, description="approach zones, 2 or more")
    movements: list[MovementSpec] = Field(
        default_factory=list, description="names of origin-destination pairs; pairs not "
        "listed are counted as 'from->to'")
    min_frames: int = Field(3, ge=1, description="frames in a row inside a zone that make a visit")

    @model_validator(mode="after")
    def _check(self) -> TurningSettings:
        names = [z.name for z in self.zones]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"zone names must be unique; repeated: {', '.join(repeated)}")
        pairs, labels = set(), set()
        for m in self.movements:
            for zone in (m.from_zone, m.to_zone):
                if zone not in names:
                    raise ValueError(f"movement '{m.name}': no zone '{zone}' (zones: "
                                     f"{', '.join(names)})")
            if (m.from_zone, m.to_zone) in pairs:
                raise ValueError(f"movement '{m.name}': {m.from_zone} -> {m.to_zone} is "
                                 "named twice")
            if m.name in labels:
                raise ValueError(f"movement name '{m.name}' is used twice")
            pairs.add((m.from_zone, m.to_zone))
            labels.add(m.name)
        return self

    def movement_name(self, origin: str, destination: str) -> str:
        """The configured name of a pair, or 'origin->destination'."""
        for m in self.movements:
            if (m.from_zone, m.to_zone) == (origin, destination):
                return m.name
        return f"{origin}->{destination}"


@dataclass(frozen=True)
class Movement:
    """A track completed an origin-destination movement."""

    track_id: int
    name: str
    origin: str
    destination: str
    time_s: float
    frame_index: int


@dataclass
class _Visits:
    origin: str | None = None
    zone: str | None = None  # zone of the current run of frames (None: outside every zone)
    run: int = 0  # frames in a row in `zone`
    left_origin: bool = False  # out of the origin for min_frames since it was established
    done: bool = False


class MovementCounter:
    """Origin-destination state of one stream's tracks."""

    def __init__(self, settings: TurningSettings, polygons: dict[str, np.ndarray]):
        self.settings = settings
        self.zone_names = [z.name for z in settings.zones]
        self._polygons = [polygons[name] for name in self.zone_names]
        self._visits: dict[int, _Visits] = {}

    def zones_of(self, anchors: np.ndarray) -> list[str | None]:
        """The zone of each point (the first listed that contains it), or None."""
        found: list[str | None] = [None] * len(anchors)
        for name, polygon in zip(self.zone_names, self._polygons):
            for i in np.flatnonzero(points_in_polygon(anchors, polygon)).tolist():
                if found[i] is None:
                    found[i] = name
        return found

    def update(self, ids: np.ndarray, anchors: np.ndarray, time_s: float,
               frame_index: int) -> list[Movement]:
        """Advance the confirmed tracks of one frame; returns the movements completed."""
        need = self.settings.min_frames
        completed = []
        for tid, zone in zip(np.asarray(ids).tolist(), self.zones_of(anchors)):
            v = self._visits.setdefault(tid, _Visits())
            if v.done:
                continue
            v.run = v.run + 1 if zone == v.zone else 1
            v.zone = zone
            if v.origin is not None and zone != v.origin and v.run >= need:
                v.left_origin = True
            if zone is None or v.run < need:
                continue
            if v.origin is None:
                v.origin = zone
            elif zone != v.origin or v.left_origin:
                v.done = True
                completed.append(Movement(tid, self.settings.movement_name(v.origin, zone),
                                          v.origin, zone, time_s, frame_index))
        return completed

    def forget(self, tid: int) -> str | None:
        """Drop a track; returns its origin when it never reached a destination."""
        v = self._visits.pop(tid, None)
        return v.origin if v is not None and not v.done else None
