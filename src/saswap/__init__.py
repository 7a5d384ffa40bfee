"""SaSwap: one-shot, shape-aware face swapping with 3D face priors."""

from saswap.errors import InvalidImageError, ModelNotFoundError, NoFaceError, SaSwapError

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "SaSwapError",
    "InvalidImageError",
    "NoFaceError",
    "ModelNotFoundError",
    "SaSwapPipeline",
    "SaSwapOutput",
]


def __getattr__(name: str):
    # The pipeline pulls in MediaPipe and the 3D prior: import it only when asked for.
    if name in ("SaSwapPipeline", "SaSwapOutput"):
        from saswap.pipelines import image

        return getattr(image, name)
    raise AttributeError(f"module 'saswap' has no attribute {name!r}")
