"""ByteTrack's per-frame association, compiled: batch IoU, an exact assignment solver and the
the matching stages in one call.

The tracker runs on every frame of every stream, with typically 5-50 tracks and detections.
At that size the cost of a NumPy implementation is dominated by the per-call overhead of a
hundred small array operations (about 1.5 us each), not by arithmetic. Compiling the
association with Numba removes that overhead; the arithmetic is unchanged.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FORBIDDEN = 1e9  # cost of a pair that may not be matched


@njit(cache=True)
def grow(boxes: np.ndarray, fraction: float) -> np.ndarray:
    """Boxes grown on every side by `fraction` of their width and height (buffered IoU:
    a new track whose velocity is unknown still overlaps where its object moved)."""
    out = np.empty((boxes.shape[0], 4))
    for i in range(boxes.shape[0]):
        dw = (boxes[i, 2] - boxes[i, 0]) * fraction
        dh = (boxes[i, 3] - boxes[i, 1]) * fraction
        out[i, 0], out[i, 1] = boxes[i, 0] - dw, boxes[i, 1] - dh
        out[i, 2], out[i, 3] = boxes[i, 2] + dw, boxes[i, 3] + dh
    return out


@njit(cache=True)
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU between (N, 4) and (M, 4) xyxy boxes."""
    n, m = a.shape[0], b.shape[0]
    out = np.zeros((n, m))
    for i in range(n):
        area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
        for j in range(m):
            w = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
            if w <= 0:
                continue
            h = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
            if h <= 0:
                continue
            inter = w * h
            area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            out[i, j] = inter / max(area_a + area_b - inter, 1e-9)
    return out


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each box of `a` (N, 4) with the box of `b` (N, 4) in the same row."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
             + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@njit(cache=True)
def _hungarian_rows(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost assignment for n <= m (Kuhn-Munkres with potentials, O(n^2 m)).

    Returns, for each row, its column.
    """
    n, m = cost.shape
    inf = np.inf
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, np.int64)  # p[j]: row (1-based) assigned to column j
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, inf)
        used = np.zeros(m + 1, np.bool_)
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = inf
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    rows_to_cols = np.full(n, -1, np.int64)
    for j in range(1, m + 1):
        if p[j] != 0:
            rows_to_cols[p[j] - 1] = j - 1
    return rows_to_cols


@njit(cache=True)
def _match_stage(iou, scores, rows, cols, fuse, max_cost, track_free, det_free,
                 pairs_t, pairs_d, count):
    """Match `rows` (tracks) to `cols` (detections) maximising similarity; a pair counts only
    when 1 - similarity <= max_cost. Appends to pairs_*; returns the new pair count."""
    n, m = rows.shape[0], cols.shape[0]
    if n == 0 or m == 0:
        return count
    sim = np.empty((n, m))
    any_ok = False
    for i in range(n):
        for j in range(m):
            s = iou[rows[i], cols[j]]
            if fuse:
                s *= scores[cols[j]]
            sim[i, j] = s
            if 1.0 - s <= max_cost:
                any_ok = True
    if not any_ok:
        return count
    transpose = n > m
    cost = np.empty((m, n)) if transpose else np.empty((n, m))
    for i in range(n):
        for j in range(m):
            c = -sim[i, j] if 1.0 - sim[i, j] <= max_cost else _FORBIDDEN
            if transpose:
                cost[j, i] = c
            else:
                cost[i, j] = c
    assignment = _hungarian_rows(cost)
    for k in range(assignment.shape[0]):
        other = assignment[k]
        if other < 0:
            continue
        i, j = (other, k) if transpose else (k, other)
        if 1.0 - sim[i, j] <= max_cost:
            pairs_t[count] = rows[i]
            pairs_d[count] = cols[j]
            track_free[rows[i]] = False
            det_free[cols[j]] = False
            count += 1
    return count


@njit(cache=True)
def associate(track_boxes, confirmed, lost, det_boxes, scores, high_threshold, low_threshold,
              match_threshold, low_match_threshold, unconfirmed_match_threshold, fuse_score,
              tentative_buffer, gap_buffer):
    """ByteTrack's matching stages, with buffered-IoU second chances.

    1. confirmed tracks (tracked or lost) against high-score detections (score-fused IoU);
    2. still-unmatched tracks that were tracked last frame against low-score detections;
    2b. when frames were skipped (`gap_buffer` > 0), confirmed tracks still unmatched against
       the high-score detections left over, on boxes grown by `gap_buffer` (buffered IoU, as
       in C-BIoU): over a long gap a vehicle accelerating through the perspective outruns its
       constant-velocity prediction, and without this its track would break in two;
    3. tentative tracks against the high-score detections left over, on boxes grown by
       `tentative_buffer`.

    Returns (track rows, detection rows) of the matched pairs, and the free masks.
    """
    n_t, n_d = track_boxes.shape[0], det_boxes.shape[0]
    iou = iou_matrix(track_boxes, det_boxes)
    track_free = np.ones(n_t, np.bool_)
    det_free = np.ones(n_d, np.bool_)
    pairs_t = np.empty(min(n_t, n_d), np.int64)
    pairs_d = np.empty(min(n_t, n_d), np.int64)
    high = scores >= high_threshold
    count = _match_stage(iou, scores, np.flatnonzero(confirmed), np.flatnonzero(high),
                         fuse_score, match_threshold, track_free, det_free, pairs_t, pairs_d, 0)
    low = ~high & (scores > low_threshold)
    count = _match_stage(iou, scores, np.flatnonzero(track_free & confirmed & ~lost),
                         np.flatnonzero(low), False, low_match_threshold, track_free, det_free,
                         pairs_t, pairs_d, count)
    if gap_buffer > 0:
        gap_iou = iou_matrix(grow(track_boxes, gap_buffer), grow(det_boxes, gap_buffer))
        count = _match_stage(gap_iou, scores, np.flatnonzero(track_free & confirmed),
                             np.flatnonzero(high & det_free), fuse_score, match_threshold,
                             track_free, det_free, pairs_t, pairs_d, count)
    if tentative_buffer > 0:
        iou = iou_matrix(grow(track_boxes, tentative_buffer), grow(det_boxes, tentative_buffer))
    count = _match_stage(iou, scores, np.flatnonzero(~confirmed), np.flatnonzero(high & det_free),
                         fuse_score, unconfirmed_match_threshold, track_free, det_free,
                         pairs_t, pairs_d, count)
    return pairs_t[:count], pairs_d[:count], track_free, det_free


@njit(cache=True)
def mark_duplicates(boxes, lost, confirmed, drop, matched, age, duplicate_iou):
    """Mark (in `drop`) the younger of each lost/matched confirmed track pair whose boxes
    overlap more than `duplicate_iou` (ByteTrack's duplicate removal)."""
    for li in range(boxes.shape[0]):
        if not (lost[li] and confirmed[li]) or drop[li]:
            continue
        for mi in matched:
            if not confirmed[mi]:
                continue
            a, b = boxes[li], boxes[mi]
            w = min(a[2], b[2]) - max(a[0], b[0])
            h = min(a[3], b[3]) - max(a[1], b[1])
            if w <= 0 or h <= 0:
                continue
            inter = w * h
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if inter / max(union, 1e-9) > duplicate_iou:
                drop[li if age[mi] > age[li] else mi] = True
