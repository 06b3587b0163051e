import numpy as np
import pytest

from edgefer.imaging import decode_image, to_gray_u8


@pytest.mark.parametrize("frame", [
    np.full((4, 4), 100, np.uint8),
    np.full((4, 4, 1), 100, np.uint8),
    np.full((4, 4, 3), 100, np.uint8),
    np.full((4, 4, 4), 100, np.uint8),
    np.full((4, 4), 100 * 256, np.uint16),
    np.full((4, 4), 100 / 255, np.float32),
])
def test_any_frame_to_gray(frame):
    out = to_gray_u8(frame)
    assert out.shape == (4, 4) and out.dtype == np.uint8 and (out == 100).all()


def test_rejects_odd_shapes():
    with pytest.raises(ValueError, match="channels"):
        to_gray_u8(np.zeros((4, 4, 2), np.uint8))


def test_decode_garbage_is_none():
    assert decode_image(b"") is None and decode_image(b"garbage") is None
