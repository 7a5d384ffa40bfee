"""Swap engines behind one interface: the geometric (default), neural SaSwap and ONNX engines."""

from saswap.engines.base import EngineOutput, SourceFace, SwapEngine
from saswap.engines.geometric import GeometricEngine
from saswap.engines.neural import SaSwapEngine
from saswap.engines.onnx_swapper import OnnxSwapEngine, latent_from_embedding

__all__ = [
    "EngineOutput",
    "SourceFace",
    "SwapEngine",
    "GeometricEngine",
    "OnnxSwapEngine",
    "SaSwapEngine",
    "latent_from_embedding",
]
