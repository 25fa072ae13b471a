"""What lane analytics report: per-frame lane states and the events of a frame.

Frozen dataclasses: they cross from the analytics into every sink (reports, store, metrics,
WebSocket) and are never changed on the way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrossingEvent:
    """A track crossed a lane's counting line."""

    stream: str
    lane: str
    track_id: int
    class_name: str
    direction: str
    time_s: float
    frame_index: int
    speed_kmh: float | None = None  # spot speed at the line (calibrated streams)
    speed_rejected: bool = False  # a speed was measured but was implausible


@dataclass(frozen=True)
class CongestionEvent:
    """A lane became congested (`congested=True`) or cleared."""

    stream: str
    lane: str
    congested: bool
    occupancy: int
    time_s: float
    frame_index: int


@dataclass(frozen=True)
class MovementEvent:
    """A track completed a turning movement (origin zone -> destination zone)."""

    stream: str
    movement: str
    origin: str
    destination: str
    track_id: int
    class_name: str
    time_s: float
    frame_index: int


@dataclass(frozen=True)
class WrongWayEvent:
    """A track drove against a one-way lane's direction for the configured distance."""

    stream: str
    lane: str
    track_id: int
    class_name: str
    distance: float
    unit: str  # "m" or "box heights"
    time_s: float
    frame_index: int


@dataclass(frozen=True)
class DwellEvent:
    """A vehicle has stayed in a lane or zone longer than its `max_dwell_s` (once a visit)."""

    stream: str
    area: str  # lane or zone name
    track_id: int
    class_name: str
    dwell_s: float
    time_s: float
    frame_index: int


@dataclass(frozen=True)
class LaneState:
    """A lane at one instant."""

    name: str
    occupancy: int
    congested: bool
    max_dwell_s: float
    counts: dict[str, int]  # cumulative crossings per direction label
    queue: int = 0  # stopped vehicles in the lane


@dataclass(frozen=True)
class AnalyticsUpdate:
    """What one frame changed."""

    lanes: tuple[LaneState, ...]
    crossings: tuple[CrossingEvent, ...]
    congestion: tuple[CongestionEvent, ...]
    movements: tuple[MovementEvent, ...] = ()
    wrong_way: tuple[WrongWayEvent, ...] = ()
    dwell: tuple[DwellEvent, ...] = ()
