"""Face analysis: detection, landmarks, alignment, the 3D face prior, temporal smoothing, tracking."""

from saswap.face.analyzer import FaceAnalyzer, MediaPipeBackend
from saswap.face.types import Face

__all__ = ["Face", "FaceAnalyzer", "MediaPipeBackend"]
