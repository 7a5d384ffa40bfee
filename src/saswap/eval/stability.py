"""Temporal stability metrics for landmark tracks and swapped videos.

Convention:
    A track is an array of shape (T, N, 2): N points over T frames, in pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["landmark_jitter", "temporal_lag"]


def landmark_jitter(track: np.ndarray, scale: float | np.ndarray = 1.0) -> float:
    """Mean frame-to-frame jitter: the norm of each point's second difference, ``x[t+1] - 2 x[t] + x[t-1]``.

    The second difference is small for smooth motion, even fast motion, and large for noise, so it
    measures jitter without penalising real movement. Divided by ``scale`` (e.g. the eye distance,
    a scalar or one value per frame) it is comparable across face sizes.

    Args:
        track: shape (T, N, 2), T >= 3.
        scale: a scalar or shape (T,).

    Returns:
        the mean over frames and points.

    Example:
        >>> t = np.arange(10.0)[:, None, None] * np.ones((1, 3, 2))  # uniform motion: no jitter
        >>> landmark_jitter(t)
        0.0
    """
    track = np.asarray(track, np.float64)
    if track.ndim != 3 or track.shape[0] < 3 or track.shape[2] != 2:
        raise ValueError(f"expected a track of shape (T>=3, N, 2), got {track.shape}")
    acc = np.linalg.norm(track[2:] - 2 * track[1:-1] + track[:-2], axis=2)
    scale = np.broadcast_to(np.asarray(scale, np.float64), (track.shape[0],))[1:-1, None]
    return float((acc / scale).mean())


def temporal_lag(raw: np.ndarray, filtered: np.ndarray, max_lag: float = 5.0, step: float = 0.05) -> float:
    """Delay, in frames, of a filtered track behind the raw one.

    The shift ``tau`` that minimises the mean squared difference between ``filtered[t]`` and the
    raw track linearly interpolated at ``t - tau``, searched on a grid of ``step`` frames.

    Args:
        raw: shape (T, N, 2).
        filtered: shape (T, N, 2).
        max_lag: largest lag searched, frames.
        step: grid step, frames.

    Returns:
        lag in frames (0 when the filter adds no delay).

    Example:
        >>> raw = np.sin(np.arange(60.0) / 5)[:, None, None] * np.ones((1, 1, 2))
        >>> late = np.concatenate([raw[:2], raw[:-2]])
        >>> round(temporal_lag(raw, late), 2)
        2.0
    """
    raw = np.asarray(raw, np.float64)
    filtered = np.asarray(filtered, np.float64)
    if raw.shape != filtered.shape or raw.ndim != 3:
        raise ValueError(f"expected two tracks of the same shape (T, N, 2), got {raw.shape} and {filtered.shape}")
    T = raw.shape[0]
    margin = int(np.ceil(max_lag)) + 1
    if T <= 2 * margin:
        raise ValueError(f"track of {T} frames is too short to measure a lag of up to {max_lag} frames")
    t = np.arange(margin, T - 1, dtype=np.float64)
    best, best_err = 0.0, np.inf
    for tau in np.arange(0.0, max_lag + 1e-9, step):
        s = t - tau
        i0 = np.floor(s).astype(int)
        frac = (s - i0)[:, None, None]
        shifted = raw[i0] * (1 - frac) + raw[i0 + 1] * frac
        err = float(((filtered[t.astype(int)] - shifted) ** 2).mean())
        if err < best_err - 1e-12:
            best, best_err = float(tau), err
    return best
