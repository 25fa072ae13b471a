"""Constant-velocity Kalman filter over many boxes at once, in closed form.

State per box: (cx, cy, a, h, vcx, vcy, va, vh) with a = w / h, the parametrisation of SORT and
ByteTrack; noise scales with box height, as in ByteTrack. Because the transition, noise and
measurement matrices of this model are all block-diagonal per coordinate, the 8x8 covariance
never couples different coordinates: it is four independent 2x2 blocks (position, velocity).
We store just those blocks, `cov[:, 0] = var(p)`, `cov[:, 1] = cov(p, v)`, `cov[:, 2] = var(v)`,
each (N, 4), and every step is a handful of elementwise array operations: no matrix products,
no inversions, no per-track loop. `full_covariance` rebuilds the 8x8 matrices (tests compare
against the textbook matrix equations).
"""

from __future__ import annotations

import numpy as np

_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
# Per-coordinate scale of the height-proportional noise; the aspect ratio uses constants.
_HEIGHT_SCALED = np.array([1.0, 1.0, 0.0, 1.0])
_ASPECT = np.array([0.0, 0.0, 1.0, 0.0])


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) corner boxes to (N, 4) centre-x, centre-y, aspect w/h, height."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-6)
    out = np.empty((len(xyxy), 4))
    out[:, 0] = xyxy[:, 0] + w / 2
    out[:, 1] = xyxy[:, 1] + h / 2
    out[:, 2] = w / h
    out[:, 3] = h
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, >=4) centre/aspect/height rows to (N, 4) corner boxes."""
    h = xyah[:, 3]
    w = xyah[:, 2] * h
    out = np.empty((len(xyah), 4))
    out[:, 0] = xyah[:, 0] - w / 2
    out[:, 1] = xyah[:, 1] - h / 2
    out[:, 2] = out[:, 0] + w
    out[:, 3] = out[:, 1] + h
    return out


def _noise(h: np.ndarray, scale: float, aspect: float) -> np.ndarray:
    """(N, 4) variances: (scale*h)^2 for x, y, h and aspect^2 for the aspect ratio."""
    s = (scale * h)[:, None] * _HEIGHT_SCALED + aspect * _ASPECT
    return s * s


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from (N, 4) xyah measurements: zero velocity, height-scaled uncertainty.

    Returns (N, 8) means and (N, 3, 4) covariance blocks.
    """
    n = len(measurements)
    mean = np.zeros((n, 8))
    mean[:, :4] = measurements
    h = measurements[:, 3]
    cov = np.zeros((n, 3, 4))
    cov[:, 0] = _noise(h, 2 * _STD_POSITION, 1e-2)
    cov[:, 2] = _noise(h, 10 * _STD_VELOCITY, 1e-5)
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, dt: np.ndarray | float = 1.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Propagate means and covariance blocks by `dt` frame intervals (scalar or (N,)).

    Process noise grows linearly with dt, so a track that missed frames is less certain.
    """
    if len(mean) == 0:
        return mean.copy(), cov.copy()
    dt = np.asarray(dt, np.float64)
    dt = dt[:, None] if dt.ndim == 1 else dt
    h = mean[:, 3]
    q_pos = _noise(h, _STD_POSITION, 1e-2) * dt
    q_vel = _noise(h, _STD_VELOCITY, 1e-5) * dt
    new_mean = mean.copy()
    new_mean[:, :4] += dt * mean[:, 4:]
    pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
    new_cov = np.empty_like(cov)
    new_cov[:, 0] = pp + 2 * dt * pv + dt * dt * vv + q_pos
    new_cov[:, 1] = pv + dt * vv
    new_cov[:, 2] = vv + q_vel
    return new_mean, new_cov


def update(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Correct states with (N, 4) xyah measurements, one per row."""
    if len(mean) == 0:
        return mean.copy(), cov.copy()
    pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
    s = pp + _noise(mean[:, 3], _STD_POSITION, 1e-1)  # innovation variance per coordinate
    k_pos, k_vel = pp / s, pv / s  # Kalman gain per coordinate
    innovation = measurements - mean[:, :4]
    new_mean = np.empty_like(mean)
    new_mean[:, :4] = mean[:, :4] + k_pos * innovation
    new_mean[:, 4:] = mean[:, 4:] + k_vel * innovation
    new_cov = np.empty_like(cov)
    new_cov[:, 0] = pp - k_pos * pp
    new_cov[:, 1] = pv - k_pos * pv
    new_cov[:, 2] = vv - k_vel * pv
    return new_mean, new_cov


def full_covariance(cov: np.ndarray) -> np.ndarray:
    """(N, 8, 8) covariance matrices from (N, 3, 4) blocks."""
    n = len(cov)
    full = np.zeros((n, 8, 8))
    i = np.arange(4)
    full[:, i, i] = cov[:, 0]
    full[:, i, i + 4] = cov[:, 1]
    full[:, i + 4, i] = cov[:, 1]
    full[:, i + 4, i + 4] = cov[:, 2]
    return full
