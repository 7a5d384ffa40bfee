"""Pipelines: image swapping (video and the template cache to come)."""

from saswap.pipelines.image import SaSwapOutput, SaSwapPipeline

__all__ = ["SaSwapOutput", "SaSwapPipeline"]
