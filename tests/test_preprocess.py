import numpy as np
import pytest

from edgefer.errors import EdgeferError
from edgefer.preprocess import Preprocessing


def test_paper_normalisations():
    px = np.tile(np.array([[0, 255], [51, 127]], np.uint8), (4, 4))
    unit = Preprocessing(size=8, normalization="zero_one").apply(px)
    sym = Preprocessing(size=8, normalization="minus_one_one").apply(px)
    assert unit.shape == (1, 8, 8, 1) and unit.dtype == np.float32
    np.testing.assert_allclose(unit[0, :, :, 0], px / 255, rtol=1e-6)
    np.testing.assert_allclose(sym[0, :, :, 0], (px / 255 - 0.5) * 2, atol=1e-6)
    assert Preprocessing(normalization="minus_one_one").value_range == (-1.0, 1.0)


def test_three_channels_and_resize():
    x = Preprocessing(size=32, channels=3).apply(np.zeros((5, 48, 48), np.uint8))
    assert x.shape == (5, 32, 32, 3)


def test_round_trip_and_validation():
    p = Preprocessing(size=48, channels=3, normalization="minus_one_one")
    assert Preprocessing.from_dict(p.to_dict()) == p
    with pytest.raises(EdgeferError, match="normalization 'imagenet'"):
        Preprocessing(normalization="imagenet")
    with pytest.raises(EdgeferError, match="manifest.preprocessing: expected size"):
        Preprocessing.from_dict({"size": 48}, "manifest.preprocessing")
