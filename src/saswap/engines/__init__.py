"""Swap engines behind one interface: the geometric (default), neural SaSwap and ONNX engines."""

from saswap.engines.base import EngineOutput, SourceFace, SwapEngine
from saswap.engines.geometric import GeometricEngine

__all__ = [
    "EngineOutput",
    "SourceFace",
    "SwapEngine",
    "GeometricEngine",
    "OnnxSwapEngine",
    "SaSwapEngine",
    "latent_from_embedding",
]


def __getattr__(name: str):
    # The neural engine needs torch and the ONNX engine onnxruntime: import them only when asked for,
    # so the default (geometric) path starts without them.
    if name == "SaSwapEngine":
        from saswap.engines.neural import SaSwapEngine

        return SaSwapEngine
    if name in ("OnnxSwapEngine", "latent_from_embedding"):
        from saswap.engines import onnx_swapper

        return getattr(onnx_swapper, name)
    raise AttributeError(f"module 'saswap.engines' has no attribute {name!r}")
