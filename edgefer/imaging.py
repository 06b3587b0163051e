"""Turn whatever image or frame a user has into the 8-bit grayscale FER models read.

Shared by the data loaders and the device pipeline (numpy + OpenCV only), so a face crop on the
Pi is made exactly like a training image.
"""

from __future__ import annotations

import cv2
import numpy as np


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """Gray, BGR or BGRA; 8-bit, 16-bit or float in [0,1] -> 2-D uint8 gray."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
        else:
            raise ValueError(f"expected 1, 3 or 4 channels, got {img.shape[2]}")
    elif img.ndim != 2:
        raise ValueError(f"expected a 2-D or 3-D image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(f"expected uint8, uint16 or float pixels, got {img.dtype}")


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
    """Decode an encoded image (PNG, JPEG, ...) keeping depth and alpha; None if undecodable."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    if buf.size == 0:
        return None
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
