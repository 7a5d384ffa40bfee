"""Machine-readable provenance: every image SaSwap writes says it is synthetic.

PNG files get iTXt/tEXt chunks, JPEG files a COM segment and an XMP packet, WebP files XMP. The
tag is a small JSON object, so scripts can read it; :func:`read_tag` (and ``saswap inspect``)
reports it.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from saswap import __version__
from saswap.errors import InvalidImageError
from saswap.io import atomic_write_bytes

__all__ = ["TAG_KEY", "make_tag", "encode_tagged", "save_tagged", "read_tag"]

TAG_KEY = "saswap"
_XMP = (
    '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    'xmlns:saswap="https://github.com/saswap/saswap/ns/1.0/" saswap:tag="{tag}"/></rdf:RDF></x:xmpmeta>'
    '<?xpacket end="w"?>'
)


def make_tag(**extra: Any) -> dict[str, Any]:
    """The provenance record: ``{"synthetic": true, "generator": "saswap", "version": ..., **extra}``; its note
    says "synthetic video" when ``extra``'s ``media`` is ``"video"``, else "synthetic image"."""
    media = "video" if extra.get("media") == "video" else "image"
    return {
        "synthetic": True,
        "generator": "saswap",
        "version": __version__,
        "note": f"synthetic {media}, made with saswap",
        **extra,
    }


def encode_tagged(image: np.ndarray, fmt: str, tag: dict[str, Any], quality: int = 95) -> bytes:
    """Encode an RGB uint8 image (RGBA for PNG and WebP) as PNG/JPEG/WEBP bytes that carry ``tag``."""
    if image.ndim == 3 and image.shape[2] == 4 and fmt.upper() == "JPEG":
        raise InvalidImageError("a JPEG has no transparency; write an RGBA image as .png or .webp")
    payload = json.dumps(tag, sort_keys=True)
    buf = io.BytesIO()
    pil = Image.fromarray(image)
    fmt = fmt.upper()
    if fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text(TAG_KEY, payload)
        info.add_text("Software", f"saswap {__version__}")
        info.add_itxt("XML:com.adobe.xmp", _XMP.format(tag=payload.replace('"', "&quot;")))
        pil.save(buf, format="PNG", pnginfo=info)
    elif fmt == "JPEG":
        xmp = _XMP.format(tag=payload.replace('"', "&quot;")).encode()
        pil.save(buf, format="JPEG", quality=quality, comment=f"{TAG_KEY}:{payload}".encode(), xmp=xmp)
    elif fmt == "WEBP":
        xmp = _XMP.format(tag=payload.replace('"', "&quot;")).encode()
        pil.save(buf, format="WEBP", quality=quality, xmp=xmp)
    else:
        raise InvalidImageError(f"cannot tag images of format {fmt}; use PNG, JPEG or WebP")
    return buf.getvalue()


_EXT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save_tagged(
    image: np.ndarray, path: str | os.PathLike, tag: dict[str, Any] | None = None, quality: int = 95
) -> None:
    """Write an RGB uint8 image (RGBA: .png or .webp) with the provenance tag, atomically (temporary file, then
    rename)."""
    path = Path(path)
    fmt = _EXT.get(path.suffix.lower())
    if fmt is None:
        raise InvalidImageError(f"{path}: unsupported output format {path.suffix!r}; use .png, .jpg or .webp")
    atomic_write_bytes(path, encode_tagged(image, fmt, tag or make_tag(), quality))


def read_tag(path: str | os.PathLike) -> dict[str, Any] | None:
    """The SaSwap provenance tag of an image file, or None when it carries none.

    Raises:
        InvalidImageError: the file is missing or not an image.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidImageError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise InvalidImageError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            img.load()
            info = dict(img.info)
            text = getattr(img, "text", {}) or {}
    except Exception as err:
        raise InvalidImageError(f"{path}: not a readable image ({err})") from None
    candidates = []
    if TAG_KEY in text:
        candidates.append(text[TAG_KEY])
    comment = info.get("comment")
    if isinstance(comment, bytes):
        comment = comment.decode("utf-8", "replace")
    if isinstance(comment, str) and comment.startswith(f"{TAG_KEY}:"):
        candidates.append(comment[len(TAG_KEY) + 1 :])
    xmp = info.get("xmp") or text.get("XML:com.adobe.xmp")
    if isinstance(xmp, bytes):
        xmp = xmp.decode("utf-8", "replace")
    if isinstance(xmp, str) and 'saswap:tag="' in xmp:
        candidates.append(xmp.split('saswap:tag="', 1)[1].split('"', 1)[0].replace("&quot;", '"'))
    for raw in candidates:
        try:
            tag = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(tag, dict) and tag.get("generator") == "saswap":
            return tag
    return None
