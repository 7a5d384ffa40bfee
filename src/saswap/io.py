"""Reading and writing images robustly.

Convention:
    Images inside SaSwap are RGB ``uint8`` arrays of shape (H, W, 3), C-contiguous.
    :func:`load_image` turns every supported input into that form: EXIF orientation applied,
    grayscale expanded, alpha composited on black, 16-bit scaled down, CMYK converted.
    :func:`load_image_alpha` also returns the transparency, and :func:`restore_alpha` puts it back on such an image
    (a swapped sticker keeps its transparent background).
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import secrets
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from saswap.errors import InvalidImageError

__all__ = ["ImageInput", "load_image", "load_image_alpha", "restore_alpha", "save_image", "atomic_write_bytes", "file_identity", "temporary_name", "temporary_pattern", "MIN_IMAGE_SIDE"]

ImageInput = Union[str, os.PathLike, np.ndarray, Image.Image, bytes, BinaryIO]


#: ISO-BMFF brands of still pictures: HEIF/HEIC (phone photos) and AVIF. A file whose ``ftyp`` box names one is a
#: photo, not a video, whatever its container looks like to FFmpeg.
PICTURE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"mif2", b"avif", b"avio")


def picture_brand(head: bytes) -> str | None:
    r"""The still-picture brand (``"heic"``, ``"avif"``, ...) an ISO-BMFF file's first 16 bytes announce, or None.

    Example:
        >>> picture_brand(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00")
        'heic'
        >>> picture_brand(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00") is None
        True
    """
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in PICTURE_BRANDS:
        return head[8:12].decode()
    return None


#: First bytes of the still-picture formats and their names (WebP and the ISO-BMFF ones are told by more than a prefix).
_PICTURE_MAGIC = (
    (b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)  # fmt: skip


def picture_kind(head: bytes) -> str | None:
    r"""The still-picture format a file's first 16 bytes announce (``"PNG"``, ``"JPEG"``, ``"GIF"``, ``"BMP"``,
    ``"TIFF"``, ``"WebP"``, or an ISO-BMFF brand such as ``"heic"`` or ``"avif"``), or None.

    Example:
        >>> picture_kind(b"\x89PNG\r\n"), picture_kind(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
        ('PNG', 'WebP')
        >>> picture_kind(b"RIFF\x00\x00\x00\x00AVI LIST") is None  # a RIFF video
        True
    """
    kind = next((k for magic, k in _PICTURE_MAGIC if head.startswith(magic)), None)
    if kind is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = "WebP"
    return kind if kind is not None else picture_brand(head)


def picture_header(head: bytes) -> bool:
    r"""Whether a file's first 16 bytes are a still picture's (:func:`picture_kind`): PNG, JPEG, GIF, BMP, TIFF,
    WebP, HEIF/HEIC or AVIF (an animated GIF's too: telling it from a still one needs its frames counted).

    Example:
        >>> picture_header(b"\x89PNG\r\n"), picture_header(b"\x00\x00\x00\x18ftypisom")
        (True, False)
    """
    return picture_kind(head) is not None


def _load_heif(data: bytes, name: str) -> np.ndarray:
    """A HEIF/HEIC photo Pillow cannot open by itself: through ``pillow-heif`` when it is installed, else decoded by
    FFmpeg (PyAV) when the file holds one coded picture; a tiled one (as phones write them) needs ``pillow-heif``."""
    advice = "install pillow-heif (pip install pillow-heif) to read it, or convert it to JPEG or PNG"
    try:
        import pillow_heif  # noqa: F401 - optional

        pillow_heif.register_heif_opener()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _from_pil(img, name)[0]
    except ImportError:
        pass
    except Exception as err:  # noqa: BLE001 - whatever the optional reader raises is a bad file here
        raise InvalidImageError(f"{name}: a HEIF/HEIC photo that cannot be read ({err})") from None
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = [s for s in container.streams.video]
            if len(streams) != 1:
                raise InvalidImageError(f"{name}: a tiled HEIF/HEIC photo (as phones take them); {advice}")
            frame = next(container.decode(streams[0]))
            arr = frame.to_ndarray(format="rgb24")
            turn = int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except InvalidImageError:
        raise
    except (av.error.FFmpegError, StopIteration, OSError, ValueError) as err:
        raise InvalidImageError(f"{name}: a HEIF/HEIC photo that cannot be decoded here ({err}); {advice}") from None
    if turn:  # the display matrix's counter-clockwise turn
        arr = np.rot90(arr, turn // 90)
    return arr


#: Smallest side (pixels) of an image that can hold an analysable face.
MIN_IMAGE_SIDE = 16


def _opaque_or(alpha: np.ndarray) -> np.ndarray | None:
    """``alpha`` (uint8 H x W), or None where every pixel is opaque."""
    return None if bool((alpha == 255).all()) else np.ascontiguousarray(alpha)


def _from_pil(img: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not hide the pixels
        pass
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode == "F" and not np.isfinite(arr).all():
            raise InvalidImageError(f"{name}: float image contains NaN or infinite values")
        if mode == "F" and arr.max(initial=0.0) <= 1.0:
            top = 1.0  # a float image in [0, 1] (as scientific and HDR tools write them)
        else:
            top = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2), None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"))
        rgb = rgba[..., :3].astype(np.float32) * (rgba[..., 3:4].astype(np.float32) / 255.0)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), _opaque_or(rgba[..., 3])
    return np.asarray(img.convert("RGB")), None


def _from_array(arr: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            f"{name}: expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}"
        )
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InvalidImageError(f"{name}: float image contains NaN or infinite values")
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise InvalidImageError(
                f"{name}: float images must lie in [0, 1], got range [{arr.min():.3g}, {arr.max():.3g}]"
            )
        arr = (arr * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InvalidImageError(f"{name}: unsupported array dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if arr.shape[2] == 3 and arr.dtype == np.uint8:
        return np.array(arr, order="C", copy=True), None  # never hand back (and later modify) the caller's array
    transparency = None
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        transparency = _opaque_or(arr[..., 3].copy())
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        arr = (arr[..., :3].astype(np.float32) * alpha + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr), transparency


def _decode(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An encoded picture's pixels (RGB uint8) and alpha; an :class:`InvalidImageError` naming ``name`` if it is none."""
    try:
        with warnings.catch_warnings():
            # PIL warns above 89 megapixels (a 108-MP phone photo) and refuses beyond twice that (a decompression
            # bomb): the first is a photo, the second an error
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # raises on truncated data instead of returning grey rows
                return _from_pil(img, name)
    except InvalidImageError:
        raise
    except UnidentifiedImageError:
        if picture_brand(data[:16]) is not None:
            return _load_heif(data, name), None
        kind = picture_kind(data[:16])
        if kind is not None:
            raise InvalidImageError(f"{name}: corrupt or truncated {kind} (its header is unreadable)") from None
        raise InvalidImageError(f"{name}: not an image file (or an unsupported image format)") from None
    except Image.DecompressionBombError as err:
        raise InvalidImageError(f"{name}: too large to read safely ({err}); make it smaller") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InvalidImageError(f"{name}: corrupt or truncated image ({err})") from None


def load_image(image: ImageInput, *, min_side: int = MIN_IMAGE_SIDE, name: str | None = None) -> np.ndarray:
    """Load an image from a path, a PIL image or an array as RGB uint8: :func:`load_image_alpha` without the
    transparency (transparent pixels composited on black).

    Example:
        >>> load_image(np.zeros((32, 48), np.uint8)).shape
        (32, 48, 3)
    """
    return load_image_alpha(image, min_side=min_side, name=name)[0]


def restore_alpha(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The RGBA image whose composite on black is ``image``: what :func:`load_image_alpha` made of a transparent
    picture, with its transparency ``alpha`` (uint8 H x W) put back.

    The colour of a partly transparent pixel is ``image / alpha``: composited on any background again it is within a
    level of the original's composite (the rounding of ``image`` scaled back); opaque pixels are ``image`` exactly,
    fully transparent ones black.

    Example:
        >>> restore_alpha(np.full((1, 2, 3), 50, np.uint8), np.array([[255, 128]], np.uint8))[..., [0, 3]].tolist()
        [[[50, 255], [100, 128]]]
    """
    a = alpha.astype(np.float32)[..., None]
    straight = np.where(a > 0, image.astype(np.float32) * 255.0 / np.maximum(a, 1.0), 0.0)
    rgb = np.clip(straight + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.concatenate([rgb, alpha[..., None].astype(np.uint8)], axis=2))


def load_image_alpha(
    image: ImageInput, *, min_side: int = MIN_IMAGE_SIDE, name: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load an image from a path, a PIL image, an array, bytes or a file object as RGB uint8, and its transparency.

    Convention:
        Arrays are taken as RGB (not OpenCV's BGR); float arrays must lie in [0, 1]. A transparent picture (PNG,
        WebP or GIF with alpha, an (H, W, 4) array) is composited on black; its alpha comes back beside it.

    Args:
        image: a file path, a ``PIL.Image.Image``, an array of shape (H, W), (H, W, 3) or (H, W, 4), an encoded
            file's bytes, or a binary file object (read from its position; a web framework's upload).
        min_side: the smallest accepted height or width.
        name: what error messages call an image that has no file name of its own (an array, bytes, a PIL image or
            file object without one; default ``<array>``, ``<bytes>``, ...).

    Returns:
        (RGB image, shape (H, W, 3), dtype uint8; its alpha, uint8 (H, W), or None when every pixel is opaque).

    Raises:
        InvalidImageError: the file is missing, empty, not an image, truncated or too small; the
            message names the file.

    Example:
        >>> rgb, alpha = load_image_alpha(np.zeros((32, 48, 4), np.uint8))
        >>> rgb.shape, alpha.shape
        ((32, 48, 3), (32, 48))
    """
    alpha = None
    if isinstance(image, Image.Image):
        name = getattr(image, "filename", "") or name or "<PIL image>"
        arr, alpha = _from_pil(image, name)
    elif isinstance(image, np.ndarray):
        name = name or "<array>"
        arr, alpha = _from_array(image, name)
    elif isinstance(image, (str, os.PathLike)):
        if isinstance(image, str) and "://" in image:
            raise InvalidImageError(
                f"{image}: URLs are not accepted (SaSwap reads local files only); download the file first"
            )
        path = Path(image)
        name = str(path)
        try:
            if not path.exists():
                raise InvalidImageError(f"{name}: no such file")
            if path.is_dir():
                raise InvalidImageError(f"{name}: is a folder, not an image file")
            data = path.read_bytes()
        except OSError as err:  # a name too long, no permission, an I/O error
            raise InvalidImageError(f"{name}: cannot be read ({err.strerror or err})") from None
        if not data:
            raise InvalidImageError(f"{name}: the file is empty (0 bytes)")
        arr, alpha = _decode(data, name)
    elif isinstance(image, (bytes, bytearray, memoryview)) or callable(getattr(image, "read", None)):
        # an encoded file's contents (a web upload, a database field) or a binary file object, read from where it is
        if isinstance(image, (bytes, bytearray, memoryview)):
            name, data = name or "<bytes>", bytes(image)
        else:
            own = getattr(image, "name", "")
            name = own if isinstance(own, str) and own else name or "<file object>"
            try:
                data = image.read()
            except (OSError, ValueError) as err:  # closed, not readable, an I/O error
                raise InvalidImageError(f"{name}: cannot be read ({err})") from None
            if isinstance(data, str):
                raise InvalidImageError(f"{name}: opened as text; open an image file in binary mode ('rb')")
            data = bytes(data or b"")
        if not data:
            raise InvalidImageError(f"{name}: empty (0 bytes), not an image")
        arr, alpha = _decode(data, name)
    else:
        raise InvalidImageError(
            f"expected a path, PIL image, numpy array, bytes or binary file object, got {type(image).__name__}"
        )
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise InvalidImageError(
            f"{name}: image is {w}x{h} pixels; at least {min_side}x{min_side} is needed to find a face"
        )
    return np.ascontiguousarray(arr), alpha


#: Longest file name (bytes) most file systems take.
_NAME_MAX = 255


def file_identity(path: str | os.PathLike) -> tuple[str, int, int]:
    """A file as this process tells it apart, for memos and things said once: its resolved path, size and
    modification time (ns). A file rewritten in place is another file.

    Raises:
        OSError: the file cannot be read (missing, no permission).
    """
    path = Path(path)
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def temporary_name(name: str, token: str) -> str:
    """The name of the temporary file a write of ``name`` goes through: ``.NAME.TOKEN.tmp``. When the whole would
    pass the 255-byte limit of a file name, NAME is shortened (on a character boundary) and ends in a hash of the
    full name, so that any name that can be written can be written through it, and two long names that begin
    alike do not share temporary files.

    Example:
        >>> temporary_name("out.png", "1a2b3c4d")
        '.out.png.1a2b3c4d.tmp'
        >>> len(os.fsencode(temporary_name("n" * 250 + ".png", "1a2b3c4d")))
        255
    """
    return f"{_temporary_stem(name, len(token))}.{token}.tmp"


def temporary_pattern(name: str) -> str:
    """A glob pattern matching every temporary file a write of ``name`` goes through (:func:`temporary_name`, the
    8-character tokens of :func:`atomic_write_bytes` and the video writer), to clean up after an interrupted write.

    Example:
        >>> temporary_pattern("out[1].png")
        '.out[[]1].png.*.tmp'
    """
    return f"{glob.escape(_temporary_stem(name, 2 * _TOKEN_BYTES))}.*.tmp"


#: Random bytes of a temporary file's token (written as twice as many hex digits).
_TOKEN_BYTES = 4


def _temporary_stem(name: str, token_length: int) -> str:
    """``.NAME``, shortened so that ``.NAME.TOKEN.tmp`` fits the file system's limit (see :func:`temporary_name`)."""
    room = _NAME_MAX - len(os.fsencode(f"..{'0' * token_length}.tmp"))
    encoded = os.fsencode(name)  # the bytes the file system sees (names that are not UTF-8 included)
    if len(encoded) > room:
        digest = hashlib.sha256(encoded).hexdigest()[:8]
        head = encoded[: room - 9]
        while head:  # do not end inside a multi-byte character
            try:
                head.decode("utf-8")
                break
            except UnicodeDecodeError as err:
                if err.start < len(head) - 3:  # not UTF-8 at all: cut bytes, as the file system does
                    break
                head = head[:-1]
        name = os.fsdecode(head) + "~" + digest
    return f".{name}"


def _create_temporary(folder: Path, name: str) -> tuple[int, Path]:
    """Create a new, empty temporary file beside ``name`` in ``folder``.

    Unlike ``tempfile.mkstemp`` (always 0o600), it asks for mode 0o666 as ``open()`` does, so the
    process umask decides the permissions and the renamed output is an ordinary file.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = folder / temporary_name(name, secrets.token_hex(_TOKEN_BYTES))
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Either the whole file appears or nothing does; a failed write leaves no partial file. The file
    gets the permissions a plain ``open()`` would give it (an existing file keeps its own; a new one
    ``0o666`` less the process umask), not the private ``0o600`` of a temporary file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
        >>> atomic_write_bytes(p, b"ok"); p.read_bytes()
        b'ok'
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidImageError(f"{path}: output folder {folder} does not exist")
    try:
        fd, tmp = _create_temporary(folder, path.name)
    except OSError as err:
        raise InvalidImageError(f"{path}: cannot write to {folder} ({err.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if path.exists():  # replacing a file keeps its permissions, as writing into it would
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a quota, an I/O error: nothing half-written stays
        tmp.unlink(missing_ok=True)
        raise InvalidImageError(f"{path}: cannot write ({err.strerror or err})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def save_image(
    image: np.ndarray, path: str | os.PathLike, *, quality: int = 95, pnginfo: dict[str, str] | None = None
) -> None:
    """Save an RGB uint8 image atomically; the format follows the file's extension.

    Args:
        image: RGB image, shape (H, W, 3), dtype uint8.
        path: output path ending in .png, .jpg/.jpeg, .webp, .bmp or .tif/.tiff.
        quality: JPEG/WebP quality.
        pnginfo: text chunks for PNG files (ignored by other formats).
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidImageError(f"{path}: unsupported output format {path.suffix!r}; use one of {sorted(_FORMATS)}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImageError(f"{path}: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    kwargs: dict = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if fmt == "PNG" and pnginfo:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for key, value in pnginfo.items():
            info.add_text(key, value)
        kwargs["pnginfo"] = info
    Image.fromarray(image).save(buf, format=fmt, **kwargs)
    atomic_write_bytes(path, buf.getvalue())
