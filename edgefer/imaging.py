"""Turn whatever image or frame a user has into the 8-bit grayscale FER models read.

Shared by the data loaders and the device pipeline (numpy + OpenCV only), so a face crop on the
Pi is made exactly like a training image.
"""

from __future__ import annotations

import contextlib

import cv2
import numpy as np


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """Gray, BGR or BGRA (alpha ignored) of any numeric pixel type -> 2-D uint8 gray.

    Pixel types, converted to 8 bits *before* the colour conversion (cv2.cvtColor raises on
    int32 and float64):
    - uint8 as is; uint16 keeps its top 8 bits (a 16-bit image uses the whole 0..65535 range);
    - other integer types (int16, int32, ... as numpy arithmetic makes them) must hold 8-bit
      values, 0..255; anything else is a ValueError, since their scale is unknown;
    - float is decided by range: a frame whose maximum is <= 1 is taken as [0, 1], any other as
      0..255 (so a 0..255 float frame is not clipped to white); values outside are clipped.
      A 0..255 frame that is black but for values <= 1 is therefore read as [0, 1].
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D or 3-D image, got shape {img.shape}")
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels, got {img.shape[2]}")
    img = _to_u8(img)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return img


def _to_u8(img: np.ndarray) -> np.ndarray:
    """The same image with uint8 pixels, by the rules in `to_gray_u8`."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if np.issubdtype(img.dtype, np.integer):
        lo, hi = int(img.min()), int(img.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"expected {img.dtype} pixels in 0..255, got {lo}..{hi}; "
                "pass uint16 for a 16-bit image"
            )
        return img.astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise ValueError("float pixels must be finite (got NaN or infinity)")
        scale = 255.0 if img.max() <= 1.0 else 1.0
        return np.clip(img * scale + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(f"expected integer or float pixels, got {img.dtype}")


def resize_square(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D image to size x size: area averaging when shrinking, bilinear when growing."""
    h, w = gray.shape[:2]
    if (h, w) == (size, size):
        return gray
    interp = cv2.INTER_AREA if h > size or w > size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


def read_image_file(path) -> tuple[np.ndarray | None, str | None]:
    """(image, None) or (None, why): for loaders that report a bad file and go on."""
    try:
        img = decode_image(np.fromfile(path, np.uint8))
    except OSError as exc:
        return None, f"cannot read image ({exc.strerror})"
    if img is None:
        return None, "unreadable image; expected PNG, JPEG, BMP, TIFF or WebP"
    return img, None


def decode_image(data: bytes | np.ndarray) -> np.ndarray | None:
    """Decode an encoded image (PNG, JPEG, ...) keeping depth and alpha; None if undecodable.

    A JPEG is turned upright by its EXIF orientation (phone photos are stored sideways with a
    tag): IMREAD_UNCHANGED, which keeps 16-bit depth and alpha, skips the tag, so JPEGs, which
    have neither, are decoded with ANYCOLOR | ANYDEPTH, which lets OpenCV apply it (no EXIF
    parser or Pillow needed on the device). Orientation tags in other formats are not applied.
    """
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    if buf.size == 0:
        return None
    is_jpeg = buf.size >= 2 and buf[0] == 0xFF and buf[1] == 0xD8
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if is_jpeg else cv2.IMREAD_UNCHANGED
    return cv2.imdecode(buf, flags)


@contextlib.contextmanager
def opencv_quiet():
    """Silence OpenCV's own `[ WARN ]` / `[ERROR]` log lines for a call whose failure edgefer
    reports itself in one line; the previous log level comes back afterwards."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)
