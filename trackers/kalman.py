"""Constant-velocity Kalman filter over many boxes at once.

State per box: (cx, cy, a, h, vcx, vcy, va, vh) with a = w / h, the parametrisation of SORT and
ByteTrack. Every operation works on stacked arrays, (N, 8) means and (N, 8, 8) covariances, so the
tracker's hot path has no per-track Python loop. Noise scales with box height, as in ByteTrack.
"""

from __future__ import annotations

import numpy as np

_NDIM = 4
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160

_H = np.hstack([np.eye(_NDIM), np.zeros((_NDIM, _NDIM))])  # measurement picks the position part


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) corner boxes to (N, 4) centre-x, centre-y, aspect w/h, height."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-6)
    return np.stack([xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, >=4) centre/aspect/height rows to (N, 4) corner boxes."""
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    x1 = xyah[:, 0] - w / 2
    y1 = xyah[:, 1] - h / 2
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def _transition(dt: np.ndarray) -> np.ndarray:
    """(N, 8, 8) transition matrices for per-box time steps `dt` (in frame intervals)."""
    f = np.broadcast_to(np.eye(2 * _NDIM), (len(dt), 2 * _NDIM, 2 * _NDIM)).copy()
    idx = np.arange(_NDIM)
    f[:, idx, idx + _NDIM] = dt[:, None]
    return f


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from (N, 4) xyah measurements: zero velocity, height-scaled uncertainty."""
    n = len(measurements)
    mean = np.hstack([measurements, np.zeros((n, _NDIM))])
    h = measurements[:, 3]
    std = np.stack(
        [
            2 * _STD_POSITION * h,
            2 * _STD_POSITION * h,
            np.full(n, 1e-2),
            2 * _STD_POSITION * h,
            10 * _STD_VELOCITY * h,
            10 * _STD_VELOCITY * h,
            np.full(n, 1e-5),
            10 * _STD_VELOCITY * h,
        ],
        axis=1,
    )
    cov = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
    idx = np.arange(2 * _NDIM)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(
    mean: np.ndarray, cov: np.ndarray, dt: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Propagate (N, 8) means and (N, 8, 8) covariances by `dt` frame intervals each.

    Process noise grows linearly with dt, so a track that missed frames is less certain.
    """
    n = len(mean)
    if n == 0:
        return mean.copy(), cov.copy()
    dt = np.broadcast_to(np.asarray(dt, np.float64), (n,))
    h = mean[:, 3]
    std = np.stack(
        [
            _STD_POSITION * h,
            _STD_POSITION * h,
            np.full(n, 1e-2),
            _STD_POSITION * h,
            _STD_VELOCITY * h,
            _STD_VELOCITY * h,
            np.full(n, 1e-5),
            _STD_VELOCITY * h,
        ],
        axis=1,
    )
    q = np.zeros_like(cov)
    idx = np.arange(2 * _NDIM)
    q[:, idx, idx] = std**2 * dt[:, None]
    f = _transition(dt)
    new_mean = np.einsum("nij,nj->ni", f, mean)
    new_cov = f @ cov @ f.transpose(0, 2, 1) + q
    return new_mean, new_cov


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Measurement-space (N, 4) means and (N, 4, 4) innovation covariances."""
    h = mean[:, 3]
    std = np.stack([_STD_POSITION * h, _STD_POSITION * h, np.full(len(h), 1e-1), _STD_POSITION * h], 1)
    r = np.zeros((len(h), _NDIM, _NDIM))
    idx = np.arange(_NDIM)
    r[:, idx, idx] = std**2
    return mean[:, :_NDIM].copy(), cov[:, :_NDIM, :_NDIM] + r


def update(
    mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct (N, 8) states with (N, 4) xyah measurements, one per row."""
    if len(mean) == 0:
        return mean.copy(), cov.copy()
    projected_mean, s = project(mean, cov)
    pht = cov[:, :, :_NDIM]  # P @ H.T, as H selects the first four state components
    # K = P H^T S^-1, solved rather than inverted (S is symmetric positive definite).
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = measurements - projected_mean
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
