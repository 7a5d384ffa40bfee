"""Exceptions raised by SaSwap.

Every error a user can cause (a bad file, no face, missing weights) is a :class:`SaSwapError`, so a
caller can catch one type and the command line can turn it into a one-line message and exit code 2.
"""

from __future__ import annotations

__all__ = ["SaSwapError", "InvalidImageError", "InvalidVideoError", "NoFaceError", "ModelNotFoundError", "first_line"]


def first_line(err: BaseException, empty: str | None = None, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters, for a one-line error that wraps a
    library's (ONNX Runtime's, torch's, safetensors'); ``empty`` (default: the exception's type name) when it has none.

    Example:
        >>> first_line(RuntimeError("size mismatch for w\\n  copying a param")), first_line(KeyError())
        ('size mismatch for w', 'KeyError')
    """
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else (type(err).__name__ if empty is None else empty)


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
