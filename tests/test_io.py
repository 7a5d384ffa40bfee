"""Bad and unusual image inputs: read correctly or rejected with a message naming the file."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from saswap.errors import InvalidImageError, SaSwapError
from saswap.io import atomic_write_bytes, load_image, load_image_alpha, restore_alpha, save_image


def _photo(h: int = 40, w: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_missing_file_names_it(tmp_path):
    with pytest.raises(InvalidImageError, match="nope.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty.jpg: the file is empty"):
        load_image(p)


def test_non_image_file(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\n" * 10)
    with pytest.raises(InvalidImageError, match=r"notes.png: not an image file"):
        load_image(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_photo(200, 200)).save(buf, format="JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InvalidImageError, match=r"cut.jpg: corrupt or truncated"):
        load_image(p)


def test_corrupt_jpeg_body(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_photo(200, 200)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    data[200:] = b"\x00" * (len(data) - 200)
    p = tmp_path / "bad.jpg"
    p.write_bytes(bytes(data))
    with pytest.raises(SaSwapError, match="bad.jpg"):
        load_image(p)


def test_one_pixel_image(tmp_path):
    p = _save(Image.new("RGB", (1, 1)), tmp_path / "dot.png")
    with pytest.raises(InvalidImageError, match=r"dot.png: image is 1x1 pixels"):
        load_image(p)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(InvalidImageError, match="is a folder"):
        load_image(tmp_path)


def test_grayscale_is_expanded(tmp_path):
    grey = np.tile(np.arange(64, dtype=np.uint8)[None], (32, 1))
    out = load_image(_save(Image.fromarray(grey, "L"), tmp_path / "g.png"))
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    assert (out[..., 0] == grey).all() and (out[..., 2] == grey).all()


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :16, 3] = 255  # left half opaque red, right half transparent
    out = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert out.shape == (32, 32, 3)
    assert out[0, 0].tolist() == [200, 0, 0] and out[0, 31].tolist() == [0, 0, 0]


def test_the_transparency_comes_back_beside_the_picture_and_can_be_put_back(tmp_path):
    """``load_image_alpha``: the alpha of a PNG, a palette GIF with a transparent colour and an RGBA array (None for an
    opaque picture); ``restore_alpha`` of the composite on black gives the straight colours back, within what the
    composite's rounding keeps (its composite on any background within a level of the original's)."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (40, 48, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 255
    rgba[10:14, :, 3] = 0
    for source in (_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"), rgba, Image.fromarray(rgba, "RGBA")):
        rgb, alpha = load_image_alpha(source)
        assert rgb.shape == (40, 48, 3) and np.array_equal(alpha, rgba[..., 3])
        back = restore_alpha(rgb, alpha)
        assert np.array_equal(back[..., 3], alpha) and np.array_equal(back[:10, :, :3], rgba[:10, :, :3])
        assert (back[10:14, :, :3] == 0).all()  # nothing is left of a fully transparent pixel's colour
        a = rgba[..., 3:4].astype(np.float64) / 255.0
        for background in (0.0, 255.0):  # composited again, on black and on white
            want = rgba[..., :3] * a + background * (1 - a)
            got = back[..., :3] * a + background * (1 - a)
            assert np.abs(got - want).max() <= 1.0
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert load_image_alpha(opaque)[1] is None and load_image_alpha(rgba[..., :3])[1] is None
    palette = Image.fromarray(rgba[..., :3]).quantize(16)
    palette.info["transparency"] = 0
    rgb, alpha = load_image_alpha(_save(palette, tmp_path / "p.gif", transparency=0))
    assert alpha is not None and set(np.unique(alpha)) == {0, 255}
    assert (rgb[alpha == 0] == 0).all()


def test_16bit_png_is_scaled(tmp_path):
    ramp = (np.linspace(0, 65535, 64)[None].repeat(32, 0)).astype(np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(ramp).save(p)
    out = load_image(p)
    assert out.dtype == np.uint8 and out.shape == (32, 64, 3)
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255


def test_exif_rotation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # stored rotated: display needs 90 degrees clockwise
    p = tmp_path / "rot.jpg"
    pil.save(p, exif=exif.tobytes(), quality=95)
    out = load_image(p)
    assert out.shape == (40, 20, 3)  # upright
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # white half now on top


def test_cmyk_jpeg_is_converted(tmp_path):
    p = _save(Image.fromarray(_photo()).convert("CMYK"), tmp_path / "print.jpg", quality=95)
    out = load_image(p)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8


def test_arrays_and_pil_inputs():
    arr = _photo()
    assert load_image(arr) is not arr and (load_image(arr) == arr).all()
    assert (load_image(Image.fromarray(arr)) == arr).all()
    assert (load_image(arr.astype(np.float32) / 255.0) == arr).all()
    with pytest.raises(InvalidImageError, match="must lie in"):
        load_image(arr.astype(np.float32))
    with pytest.raises(InvalidImageError, match=r"shape \(H, W\)"):
        load_image(np.zeros((4, 4, 4, 4), np.uint8))
    with pytest.raises(InvalidImageError, match="expected a path"):
        load_image(12)  # type: ignore[arg-type]


def test_encoded_bytes_and_binary_file_objects_are_read_like_the_file(tmp_path):
    # a web framework's upload, a database field: the picture's file contents, not a path
    path = tmp_path / "photo.png"
    Image.fromarray(_photo()).save(path)
    want = load_image(path)
    data = path.read_bytes()
    assert (load_image(data) == want).all() and (load_image(bytearray(data)) == want).all()
    assert (load_image(io.BytesIO(data)) == want).all()
    with open(path, "rb") as f:
        assert (load_image(f) == want).all()
    with pytest.raises(InvalidImageError, match=r"^<bytes>: not an image file"):
        load_image(b"not a picture")
    with pytest.raises(InvalidImageError, match=r"^the source image: empty \(0 bytes\)"):
        load_image(io.BytesIO(b""), name="the source image")  # a caller names what has no file name
    with pytest.raises(InvalidImageError, match=r"^<bytes>: corrupt or truncated image"):
        load_image(data[: len(data) // 2])
    with open(path, encoding="latin-1") as f, pytest.raises(InvalidImageError, match="photo.png: opened as text"):
        load_image(f)
    f = open(path, "rb")
    f.close()
    with pytest.raises(InvalidImageError, match="photo.png: cannot be read"):
        load_image(f)


def test_save_image_is_atomic(tmp_path):
    out = tmp_path / "x.png"
    save_image(_photo(), out, pnginfo={"k": "v"})
    assert Image.open(out).text["k"] == "v"
    with pytest.raises(InvalidImageError, match="unsupported output format"):
        save_image(_photo(), tmp_path / "x.gifx")
    with pytest.raises(InvalidImageError, match="does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "x.bin", b"1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]  # no temporary files left


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        new = tmp_path / "new.png"
        save_image(_photo(), new)
        assert new.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, as open() would give
    finally:
        os.umask(old)
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"old")
    existing.chmod(0o604)
    atomic_write_bytes(existing, b"new")
    assert existing.read_bytes() == b"new" and existing.stat().st_mode & 0o777 == 0o604


def test_a_url_is_refused_plainly():
    from saswap.errors import InvalidImageError
    from saswap.io import load_image

    with pytest.raises(InvalidImageError, match="URLs are not accepted.*download the file first"):
        load_image("https://example.com/x.jpg")


def test_a_float_tiff_in_0_1_is_read_as_such(tmp_path):
    """Scientific and HDR tools write float images in [0, 1]: read as bytes of 0-255 they came out black."""
    grey = np.linspace(0, 1, 40 * 60, dtype=np.float32).reshape(40, 60)
    path = _save(Image.fromarray(grey, "F"), tmp_path / "float.tif")
    img = load_image(path)
    assert img.shape == (40, 60, 3)
    assert abs(float(img.mean()) - 127.5) < 2 and img.max() == 255


def test_a_photo_above_pils_warning_size_is_read_and_a_bomb_refused(tmp_path, monkeypatch):
    """PIL warns above ``MAX_IMAGE_PIXELS`` (89 MP: a 108-MP phone photo was refused as "corrupt") and refuses beyond
    twice that; the limits are lowered here so that small files stand in for both."""
    path = _save(Image.fromarray(_photo(40, 60)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 2,400 pixels: over the warning, under the error
    assert load_image(path).shape == (40, 60, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # over twice the limit: a decompression bomb
    with pytest.raises(InvalidImageError, match="big.png"):
        load_image(path)


def test_a_full_disk_leaves_nothing_and_names_the_file(tmp_path, monkeypatch):
    import errno

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self._fh = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", Full)
    with pytest.raises(InvalidImageError, match=r"out\.png: cannot write \(No space left on device\)"):
        atomic_write_bytes(tmp_path / "out.png", b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_names_near_the_file_systems_limit(tmp_path):
    """The temporary file beside an output is ``.NAME.XXXXXXXX.tmp``: for a name of 242-255 bytes it passed the
    255-byte limit and a valid output was refused; an unreadable or too long input name is a clear error."""
    from saswap.io import temporary_name

    long = tmp_path / ("n" * 246 + ".png")
    atomic_write_bytes(long, b"ok")
    assert long.read_bytes() == b"ok" and [p.name for p in tmp_path.iterdir()] == [long.name]
    assert len(temporary_name("é" * 200, "0a1b2c3d").encode()) <= 255  # cut on a character boundary
    # what an interrupted write of a long name leaves is found by the pattern cleanup uses, and only that
    from saswap.io import temporary_pattern

    left = tmp_path / temporary_name(long.name, "0a1b2c3d")
    left.write_bytes(b"")
    other = tmp_path / temporary_name("n" * 246 + ".jpg", "0a1b2c3d")
    other.write_bytes(b"")
    assert list(tmp_path.glob(temporary_pattern(long.name))) == [left]
    left.unlink()
    other.unlink()
    with pytest.raises(InvalidImageError, match="cannot be read"):
        load_image(tmp_path / ("x" * 300 + ".jpg"))


def test_avif_and_heif_photos_are_pictures(tmp_path, monkeypatch):
    """An AVIF photo (Android, browsers) loads as a picture, and is not taken for a video for being in an ISO-BMFF
    box; the HEIF/HEIC reader (FFmpeg, for a photo of one coded picture, when pillow-heif is not installed) decodes
    such a box to the same pixels."""
    import sys

    from saswap.io import _load_heif, picture_brand
    from saswap.videoio import is_video_file

    rng = np.random.default_rng(0)
    pattern = np.kron(rng.integers(0, 256, (4, 6, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 64x96, in blocks
    Image.fromarray(pattern).save(tmp_path / "photo.avif", quality=95)
    data = (tmp_path / "photo.avif").read_bytes()
    assert picture_brand(data[:16]) == "avif" and not is_video_file(tmp_path / "photo.avif")
    loaded = load_image(tmp_path / "photo.avif")
    assert loaded.shape == pattern.shape and np.abs(loaded.astype(int) - pattern).mean() < 8
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as without pillow-heif installed
    decoded = _load_heif(data, "photo.avif")
    assert decoded.shape == pattern.shape
    centres = (slice(8, None, 16), slice(8, None, 16))  # away from the blocks' edges, where chroma upsampling differs
    assert np.abs(decoded[centres].astype(int) - loaded[centres].astype(int)).max() <= 3
    with pytest.raises(InvalidImageError, match="broken.heic: a HEIF/HEIC photo that cannot be decoded here"):
        _load_heif(data[:40], "broken.heic")


def test_an_image_too_large_to_read_safely_is_said_so_not_called_corrupt(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (200, 200), (90, 90, 90)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40,000 pixels: more than twice the limit
    with pytest.raises(InvalidImageError, match=r"huge\.png: too large to read safely .*make it smaller") as err:
        load_image(path)
    assert "corrupt" not in str(err.value)
