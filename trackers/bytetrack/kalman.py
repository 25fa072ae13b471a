"""Constant-velocity Kalman filter over many boxes at once, in closed form.

State per box: (cx, cy, a, h, vcx, vcy, va, vh) with a = w / h, the parametrisation of SORT and
ByteTrack; noise scales with box height, as in ByteTrack. Because the transition, noise and
measurement matrices of this model are all block-diagonal per coordinate, the 8x8 covariance
never couples different coordinates: it is four independent 2x2 blocks (position, velocity).

So a box's whole filter state packs into one row of 20 numbers:
`[mean (8) | var(p) (4) | cov(p, v) (4) | var(v) (4)]`, and N boxes into an (N, 20) array.
Prediction is then one matrix product plus the height-scaled noise, and the update a few
elementwise operations: no per-track loop, no 8x8 products, no inversions.
`full_covariance` rebuilds the 8x8 matrices (tests compare against the textbook equations).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

WIDTH = 20
MEAN, PP, PV, VV = slice(0, 8), slice(8, 12), slice(12, 16), slice(16, 20)

_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
_XYH = np.array([1.0, 1.0, 0.0, 1.0])  # coordinates whose noise scales with the height
_A = np.array([0.0, 0.0, 1.0, 0.0])  # the aspect ratio, whose noise is constant
# Measurement noise: variance = h^2 * _R_H + _R_C per coordinate.
_R_H, _R_C = _STD_POSITION**2 * _XYH, 1e-1**2 * _A


@lru_cache(maxsize=32)
def _prediction(dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(20, 20) transition of packed rows, and the noise added: h^2 * q_h + q_c."""
    t = np.eye(WIDTH)
    i = np.arange(4)
    t[4 + i, i] = dt  # p' = p + dt v   (rows are multiplied from the left: x @ t)
    t[PV.start + i, PP.start + i] = 2 * dt  # pp' = pp + 2 dt pv + dt^2 vv
    t[VV.start + i, PP.start + i] = dt * dt
    t[VV.start + i, PV.start + i] = dt  # pv' = pv + dt vv
    q_h, q_c = np.zeros(WIDTH), np.zeros(WIDTH)
    q_h[PP], q_h[VV] = _STD_POSITION**2 * _XYH * dt, _STD_VELOCITY**2 * _XYH * dt
    q_c[PP], q_c[VV] = 1e-2**2 * _A * dt, 1e-5**2 * _A * dt
    for a in (t, q_h, q_c):
        a.flags.writeable = False
    return t, q_h, q_c


@njit(cache=True)
def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) corner boxes to (N, 4) centre-x, centre-y, aspect w/h, height."""
    out = np.empty((len(xyxy), 4))
    w = xyxy[:, 2] - xyxy[:, 0]
    out[:, 3] = h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-6)
    out[:, 0] = xyxy[:, 0] + w / 2
    out[:, 1] = xyxy[:, 1] + h / 2
    out[:, 2] = w / h
    return out


@njit(cache=True)
def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, >=4) centre/aspect/height rows (packed states too) to (N, 4) corner boxes."""
    out = np.empty((len(xyah), 4))
    half_h = xyah[:, 3] / 2
    half_w = xyah[:, 2] * half_h
    out[:, 0] = xyah[:, 0] - half_w
    out[:, 1] = xyah[:, 1] - half_h
    out[:, 2] = xyah[:, 0] + half_w
    out[:, 3] = xyah[:, 1] + half_h
    return out


@njit(cache=True)
def initiate(measurements: np.ndarray) -> np.ndarray:
    """Packed (N, 20) states of new tracks from (N, 4) xyah measurements: zero velocity,
    height-scaled uncertainty."""
    x = np.zeros((len(measurements), WIDTH))
    x[:, :4] = measurements
    h2 = (measurements[:, 3] ** 2).reshape(-1, 1)
    x[:, 8:12] = h2 * ((2 * _STD_POSITION) ** 2 * _XYH) + 1e-2**2 * _A
    x[:, 16:20] = h2 * ((10 * _STD_VELOCITY) ** 2 * _XYH) + 1e-5**2 * _A
    return x


def predict(x: np.ndarray, dt: float = 1.0) -> np.ndarray:
    """Packed states propagated by `dt` frame intervals.

    Process noise grows linearly with dt, so a track that missed frames is less certain.
    """
    t, q_h, q_c = _prediction(float(dt))
    return _predict(np.ascontiguousarray(x), t, q_h, q_c)


@njit(cache=True)
def _predict(x, t, q_h, q_c):
    return x @ t + (x[:, 3] ** 2).reshape(-1, 1) * q_h + q_c


@njit(cache=True)
def update(x: np.ndarray, measurements: np.ndarray) -> np.ndarray:
    """Packed states corrected with (N, 4) xyah measurements, one per row."""
    pp, pv, vv = x[:, 8:12], x[:, 12:16], x[:, 16:20]
    s = pp + (x[:, 3] ** 2).reshape(-1, 1) * _R_H + _R_C  # innovation variance per coordinate
    k_pos, k_vel = pp / s, pv / s  # Kalman gain per coordinate
    innovation = measurements - x[:, :4]
    out = np.empty_like(x)
    out[:, :4] = x[:, :4] + k_pos * innovation
    out[:, 4:8] = x[:, 4:8] + k_vel * innovation
    out[:, 8:12] = pp - k_pos * pp
    out[:, 12:16] = pv - k_pos * pv
    out[:, 16:20] = vv - k_vel * pv
    return out


def full_covariance(x: np.ndarray) -> np.ndarray:
    """(N, 8, 8) covariance matrices of packed states."""
    full = np.zeros((len(x), 8, 8))
    i = np.arange(4)
    full[:, i, i] = x[:, PP]
    full[:, i, i + 4] = full[:, i + 4, i] = x[:, PV]
    full[:, i + 4, i + 4] = x[:, VV]
    return full


def replay_gap(x_last: np.ndarray, z_last: np.ndarray, z_new: np.ndarray,
               gaps: np.ndarray) -> np.ndarray:
    """States of re-found tracks, rebuilt from their last matched state `x_last`.

    For a track unseen for g frame intervals, the filter is stepped g-1 times through virtual
    observations on the straight path from its last observation `z_last` to the new one
    `z_new`, then predicted once more (ready for the update with `z_new`). This is OC-SORT's
    observation-centric re-update: the velocity drifted while the track was lost is replaced
    by the motion actually observed across the gap.
    """
    t, q_h, q_c = _prediction(1.0)
    return _replay_gap(np.ascontiguousarray(x_last), z_last, z_new, gaps, t, q_h, q_c)


@njit(cache=True)
def _replay_gap(x, z_last, z_new, gaps, t, q_h, q_c):
    for k in range(1, gaps.max()):
        active = np.flatnonzero(gaps > k)
        frac = (k / gaps[active]).reshape(-1, 1)
        virtual = z_last[active] + (z_new[active] - z_last[active]) * frac
        x[active] = update(_predict(x[active], t, q_h, q_c), virtual)
    return _predict(x, t, q_h, q_c)
