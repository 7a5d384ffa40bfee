"""Evaluation metrics: identity, pose, expression and temporal stability."""

from saswap.eval.stability import landmark_jitter, temporal_lag

__all__ = ["landmark_jitter", "temporal_lag"]
