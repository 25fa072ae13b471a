"""Where lane overlays go: the lane palette shared with the dashboard, counting-line direction
arrows and count labels placed off the line and off the vehicles.

Pure geometry on NumPy arrays (no drawing), so the placement rules are tested without images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# One colour per lane, in the order of the stream's lanes. The dashboard's flow chart gets the
# same table from the API (GET /api/streams/{id}/flow and /lanes: `color`), so lane3's line in
# the video and lane3's line in the chart match. Hex RGB, as the browser reads it.
LANE_PALETTE = ("#3fa7ff", "#ffb84d", "#4cd07d", "#ff5c5c", "#c38bff", "#4dd9d9", "#ff8fc7",
                "#c9d65a")


def lane_color_hex(index: int) -> str:
    """The palette colour of the lane at `index` in its stream's lane list ("#rrggbb")."""
    return LANE_PALETTE[index % len(LANE_PALETTE)]


def lane_color_bgr(index: int) -> tuple[int, int, int]:
    """The same colour as OpenCV draws it (B, G, R)."""
    value = lane_color_hex(index)
    r, g, b = (int(value[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def lane_colors(names: list[str]) -> dict[str, str]:
    """Lane name -> palette colour, lanes in their configured order."""
    return {name: lane_color_hex(i) for i, name in enumerate(names)}


@dataclass(frozen=True)
class Arrow:
    """One arrow of a counting line: from `tail` to `tip` (pixels, float)."""

    tail: tuple[float, float]
    tip: tuple[float, float]


def direction_arrows(line: np.ndarray, direction: str, length: float) -> tuple[Arrow, ...]:
    """Arrows across a counting line's middle pointing the way counted traffic moves.

    A crossing is "in" from the left-hand side of start->end to its right-hand side (on
    screen, y down: trackers/analytics/crossing.py), so "in" points to the right-hand side,
    "out" to the left-hand one and "both" gets one arrow each way.
    """
    a, b = np.asarray(line, float)
    d = b - a
    norm = float(np.hypot(*d))
    if norm < 1e-6:
        return ()
    right = np.array([-d[1], d[0]]) / norm  # the right-hand side's normal on screen
    mid = (a + b) / 2
    half = length / 2
    ways = {"in": (1.0,), "out": (-1.0,), "both": (1.0, -1.0)}.get(direction, (1.0, -1.0))
    if len(ways) == 1:
        sign = ways[0]
        return (Arrow(tuple(mid - sign * right * half), tuple(mid + sign * right * half)),)
    # Both ways: two arrows side by side along the line, one each way.
    along = d / norm * min(length * 0.4, norm / 4)
    return (Arrow(tuple(mid - along - right * half), tuple(mid - along + right * half)),
            Arrow(tuple(mid + along + right * half), tuple(mid + along - right * half)))


def _rect_hits_segment(rect: tuple[int, int, int, int], a: np.ndarray, b: np.ndarray,
                       margin: float) -> bool:
    """Whether the segment a-b passes within `margin` pixels of rect (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = rect[0] - margin, rect[1] - margin, rect[2] + margin, rect[3] + margin
    # Sample the segment densely (every pixel): exact enough for a label, and simple.
    steps = max(2, int(np.hypot(*(b - a))) + 1)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    pts = a + (b - a) * t
    inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
    return bool(inside.any())


def _overlaps(rect: tuple[int, int, int, int], boxes: np.ndarray) -> bool:
    if not len(boxes):
        return False
    x0, y0, x1, y1 = rect
    return bool(((boxes[:, 0] < x1) & (boxes[:, 2] > x0)
                 & (boxes[:, 1] < y1) & (boxes[:, 3] > y0)).any())


def label_candidates(anchor_line: np.ndarray, size: tuple[int, int],
                     gap: int) -> list[tuple[int, int, int, int]]:
    """Rectangles (x0, y0, x1, y1) of a label of `size` (w, h) around a line, best first:
    beyond the line's end, before its start, then above and below its middle."""
    a, b = np.asarray(anchor_line, float)
    w, h = size
    mid = (a + b) / 2
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    top_y = min(a[1], b[1])
    bottom_y = max(a[1], b[1])
    spots = [
        (right[0] + gap, right[1] - h / 2),  # beside the right-hand end
        (left[0] - gap - w, left[1] - h / 2),  # beside the left-hand end
        (mid[0] - w / 2, top_y - gap - h),  # above
        (mid[0] - w / 2, bottom_y + gap),  # below
        (right[0] + gap, right[1] - h - gap - h / 2),  # beside the end, higher
        (right[0] + gap, right[1] + gap + h / 2),  # beside the end, lower
        (left[0] - gap - w, left[1] - h - gap - h / 2),
        (left[0] - gap - w, left[1] + gap + h / 2),
    ]
    return [(round(x), round(y), round(x) + w, round(y) + h) for x, y in spots]


def place_label(line: np.ndarray | None, polygon: np.ndarray | None, size: tuple[int, int],
                image_size: tuple[int, int], boxes: np.ndarray, gap: int = 6,
                other_lines: tuple[np.ndarray, ...] = ()) -> tuple[int, int, int, int]:
    """Where a lane's count label goes: the first candidate inside the image that touches
    neither the counting line nor `other_lines` (the other lanes': lanes side by side often
    continue each other's line) and covers no box of this frame; if none is free, the first
    inside the image (clipped in), so a label is always drawn."""
    spots = label_spots(line, polygon, size, image_size, gap, other_lines)
    return choose_spot(spots, boxes)


@dataclass(frozen=True)
class LabelSpots:
    """A label's candidate rectangles inside the image, best first, with whether each is
    clear of every counting line: static for a lane and a label size, so computed once."""

    rects: tuple[tuple[int, int, int, int], ...]
    off_lines: tuple[bool, ...]


def label_spots(line: np.ndarray | None, polygon: np.ndarray | None, size: tuple[int, int],
                image_size: tuple[int, int], gap: int = 6,
                other_lines: tuple[np.ndarray, ...] = ()) -> LabelSpots:
    """The candidates of `place_label` and their line test (no boxes: those change)."""
    width, height = image_size
    w, h = size
    if line is None:  # a lane without a line: its label at the polygon's middle
        cx, cy = np.asarray(polygon, float).mean(axis=0)
        x = int(np.clip(cx - w / 2, 0, max(width - w - 1, 0)))
        y = int(np.clip(cy - h / 2, 0, max(height - h, 0)))
        return LabelSpots(((x, y, x + w, y + h),), (True,))
    a, b = np.asarray(line, float)
    candidates = label_candidates(np.stack([a, b]), size, gap)
    fits = [r for r in candidates if r[0] >= 0 and r[1] >= 0 and r[2] < width and r[3] <= height]
    if not fits:  # none fits: the first, clipped into the image
        x0 = int(np.clip(candidates[0][0], 0, max(width - w - 1, 0)))
        y0 = int(np.clip(candidates[0][1], 0, max(height - h, 0)))
        return LabelSpots(((x0, y0, x0 + w, y0 + h),), (False,))
    lines = [(a, b), *((np.asarray(o, float)[0], np.asarray(o, float)[1]) for o in other_lines)]
    return LabelSpots(tuple(fits), tuple(not any(_rect_hits_segment(r, p, q, 2)
                                                 for p, q in lines) for r in fits))


def choose_spot(spots: LabelSpots, boxes: np.ndarray) -> tuple[int, int, int, int]:
    """The first candidate off the lines and off `boxes` (N, 4), else the first one."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    for rect, off_lines in zip(spots.rects, spots.off_lines):
        if off_lines and not _overlaps(rect, boxes):
            return rect
    return spots.rects[0]
