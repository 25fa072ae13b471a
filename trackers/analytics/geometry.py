"""Plane geometry for lanes: which side of a line a point is on, where a path crosses a
segment, and which points lie inside a polygon. Image coordinates: x right, y down.
"""

from __future__ import annotations

import numpy as np


def signed_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Signed distance in pixels from each (N, 2) point to the infinite line start->end.

    Positive on the right-hand side of the line as seen on screen when walking from `start`
    to `end` (for a line drawn left to right, positive is below it).
    """
    direction = end - start
    length = float(np.hypot(*direction))
    if length == 0:
        raise ValueError("a line needs two distinct points")
    rel = points - start
    return (direction[0] * rel[:, 1] - direction[1] * rel[:, 0]) / length


def crossing_position(
    p0: np.ndarray, p1: np.ndarray, start: np.ndarray, end: np.ndarray
) -> float | None:
    """Where the path p0->p1 meets the infinite line through start->end.

    Returns the position along the segment (0 at `start`, 1 at `end`), or None when the path
    is parallel to the line. Callers decide whether the position lies on the segment.
    """
    d = end - start
    m = p1 - p0
    denom = m[0] * d[1] - m[1] * d[0]
    if abs(denom) < 1e-12:
        return None
    # Solve p0 + s*m = start + t*d for t.
    w = p0 - start
    return float((m[0] * w[1] - m[1] * w[0]) / denom)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: which (N, 2) points lie inside the (K, 2) polygon (even-odd rule)."""
    if len(points) == 0:
        return np.zeros(0, bool)
    x = points[:, 0][:, None]
    y = points[:, 1][:, None]
    previous = np.concatenate([polygon[-1:], polygon[:-1]])  # each vertex's predecessor
    xi, yi = polygon[:, 0][None, :], polygon[:, 1][None, :]
    xj, yj = previous[:, 0][None, :], previous[:, 1][None, :]
    straddles = (yi > y) != (yj > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = (xj - xi) * (y - yi) / (yj - yi) + xi
    hits = straddles & (x < x_cross)
    return (np.count_nonzero(hits, axis=1) % 2) == 1


def polygon_is_simple(polygon: np.ndarray) -> bool:
    """True when no two non-adjacent edges of the polygon intersect."""
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if _segments_intersect(*edges[i], *edges[j]):
                return False
    return True


def _segments_intersect(a, b, c, d) -> bool:
    def orient(p, q, r):
        return np.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    return orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0


def polygon_area(polygon: np.ndarray) -> float:
    """Unsigned area (shoelace formula)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)
