"""SaSwap: one-shot, shape-aware face swapping with 3D face priors."""

from saswap.errors import InvalidImageError, ModelNotFoundError, NoFaceError, SaSwapError

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "SaSwapError", "InvalidImageError", "NoFaceError", "ModelNotFoundError"]
