"""Exceptions raised by SaSwap.

Every error a user can cause (a bad file, no face, missing weights) is a :class:`SaSwapError`, so a
caller can catch one type and the command line can turn it into a one-line message and exit code 2.
"""

from __future__ import annotations

__all__ = ["SaSwapError", "InvalidImageError", "InvalidVideoError", "NoFaceError", "ModelNotFoundError"]


class SaSwapError(Exception):
    """Base class of every error SaSwap raises for bad input or a missing resource."""


class InvalidImageError(SaSwapError, ValueError):
    """An image could not be read, or its content is unusable (corrupt, empty, too small)."""


class InvalidVideoError(SaSwapError, ValueError):
    """A video could not be read or written (no video stream, truncated, zero frames, unwritable output)."""


class NoFaceError(SaSwapError):
    """No face was found where one is required."""


class ModelNotFoundError(SaSwapError, FileNotFoundError):
    """Weights or a model pack are not present locally and cannot (or may not) be downloaded."""
