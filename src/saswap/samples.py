"""Sample photos that ship inside installed dependencies, for demos and the README's first command.

SaSwap ships no photos of people itself; these come from the wheels of packages it depends on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from saswap.errors import InvalidImageError

__all__ = ["SAMPLES", "sample_path", "load_sample"]

#: name -> (package, path inside the package)
SAMPLES: dict[str, tuple[str, str]] = {
    "t1": ("insightface", "data/images/t1.jpg"),  # six people, group photo
    "tom_hanks": ("insightface", "data/images/Tom_Hanks_54745.png"),
    "mask_white": ("insightface", "data/images/mask_white.jpg"),
}


def sample_path(name: str) -> Path:
    """Path of a sample photo shipped in an installed package (see :data:`SAMPLES`).

    Example:
        >>> sample_path("t1").name
        't1.jpg'
    """
    if name not in SAMPLES:
        raise InvalidImageError(f"sample:{name}: unknown sample; choose one of {sorted([*SAMPLES, 'astronaut'])}")
    package, rel = SAMPLES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise InvalidImageError(f"sample:{name}: the package {package!r} that ships it is not installed")
    path = Path(spec.origin).parent / rel
    if not path.is_file():
        raise InvalidImageError(f"sample:{name}: {path} is missing from the installed {package}")
    return path


def load_sample(name: str) -> np.ndarray:
    """RGB uint8 array of a sample photo (``"astronaut"`` comes from scikit-image when installed)."""
    from saswap.io import load_image

    if name == "astronaut":
        try:
            from skimage import data
        except ImportError:
            raise InvalidImageError("sample:astronaut: needs scikit-image (pip install scikit-image)") from None
        return np.ascontiguousarray(data.astronaut())
    return load_image(sample_path(name))
