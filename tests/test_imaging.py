import struct

import cv2
import numpy as np
import pytest

from edgefer.imaging import decode_image, read_image_file, to_gray_u8

# One pixel's B, G, R in 8-bit values and its gray by OpenCV's BGR weights; R and B swapped
# (an RGB slip) would give round(0.114*60 + 0.587*200 + 0.299*10) = 127.
BGR = (10, 200, 60)
GRAY = round(0.114 * 10 + 0.587 * 200 + 0.299 * 60)  # 136

# 8-bit values -> the same picture in each pixel type (its own scale).
AS_DTYPE = {
    "uint8": lambda v: v.astype(np.uint8),
    "uint16": lambda v: v.astype(np.uint16) * 257,
    "int16": lambda v: v.astype(np.int16),
    "int32": lambda v: v.astype(np.int32),
    "int64": lambda v: v.astype(np.int64),
    "float32 in [0,1]": lambda v: (v / 255).astype(np.float32),
    "float64 in [0,1]": lambda v: v / 255,
    "float32 in 0..255": lambda v: v.astype(np.float32),
    "float64 in 0..255": lambda v: v.astype(np.float64),
}


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
@pytest.mark.parametrize("dtype", AS_DTYPE)
def test_any_pixel_type_to_gray(dtype, channels):
    if channels is None:
        values = np.full((4, 4), GRAY)
    elif channels == 1:
        values = np.full((4, 4, 1), GRAY)
    else:
        values = np.empty((4, 4, channels))
        values[:, :, :3] = BGR
        if channels == 4:
            values[:, :, 3] = 0  # alpha is ignored: a transparent pixel keeps its colour
    out = to_gray_u8(AS_DTYPE[dtype](values))
    assert out.shape == (4, 4) and out.dtype == np.uint8
    assert (out == GRAY).all(), (dtype, out[0, 0])


def test_float_range_decides_the_scale():
    ramp = np.linspace(0, 1, 5)
    assert to_gray_u8(ramp[None]).tolist() == [[0, 64, 128, 191, 255]]
    assert to_gray_u8(ramp[None] * 255).tolist() == [[0, 64, 128, 191, 255]]
    assert to_gray_u8(np.array([[-3.0, 300.0]])).tolist() == [[0, 255]]  # clipped, not wrapped


@pytest.mark.parametrize(
    "frame, error",
    [
        (np.zeros((4, 4, 2), np.uint8), "channels"),
        (np.zeros((4, 4, 3, 1), np.uint8), "2-D or 3-D"),
        (np.full((4, 4, 3), 1000, np.int32), r"int32 pixels in 0\.\.255, got 1000\.\.1000"),
        (np.full((4, 4), -1, np.int16), r"int16 pixels in 0\.\.255, got -1\.\.-1"),
        (np.full((4, 4), np.nan, np.float64), "finite"),
        (np.zeros((4, 4), np.complex64), "integer or float pixels, got complex64"),
    ],
)
def test_rejects_what_it_cannot_read(frame, error):
    with pytest.raises(ValueError, match=error):
        to_gray_u8(frame)


def test_decode_garbage_is_none():
    assert decode_image(b"") is None and decode_image(b"garbage") is None


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 EXIF segment (little-endian TIFF, one IFD0 entry: Orientation),
    inserted after SOI, as a phone writes it."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0" * 4
    exif = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:]


def test_jpeg_exif_orientation_is_applied(tmp_path):
    img = np.zeros((40, 64, 3), np.uint8)
    img[:10, :20] = BGR  # a mark in the top-left corner shows which way is up
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    plain = decode_image(jpeg)
    # Orientation 6: the stored picture must be turned 90 degrees clockwise to stand upright.
    path = tmp_path / "phone.jpg"
    path.write_bytes(with_exif_orientation(jpeg, 6))
    upright, err = read_image_file(path)  # the image-folder loaders' path
    assert err is None and upright.shape == (64, 40, 3)
    np.testing.assert_array_equal(upright, cv2.rotate(plain, cv2.ROTATE_90_CLOCKWISE))
    gray_jpeg = cv2.imencode(".jpg", img[:, :, 1])[1].tobytes()
    assert decode_image(with_exif_orientation(gray_jpeg, 6)).shape == (64, 40)


@pytest.mark.parametrize(
    "image",
    [
        np.full((6, 8, 4), 200, np.uint8),  # BGRA keeps its alpha
        np.full((6, 8), 60000, np.uint16),  # 16-bit keeps its depth
    ],
)
def test_png_keeps_depth_and_alpha(image):
    out = decode_image(cv2.imencode(".png", image)[1].tobytes())
    assert out.dtype == image.dtype and out.shape == image.shape
