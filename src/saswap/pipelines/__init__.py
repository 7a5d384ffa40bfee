"""Pipelines: image and video swapping, the template cache, batch jobs."""

from saswap.pipelines.image import SaSwapOutput, SaSwapPipeline

__all__ = ["SaSwapOutput", "SaSwapPipeline"]
