import numpy as np

from edgefer.data.dataset import FerData
from edgefer.data.splits import resplit, stratified_holdout
from tests.conftest import synthetic_faces


def test_stratified_and_seeded():
    labels = np.repeat(np.arange(7), 50)
    a = stratified_holdout(labels, 0.4, seed=3)
    assert all(a[labels == c].sum() == 20 for c in range(7))
    np.testing.assert_array_equal(a, stratified_holdout(labels, 0.4, seed=3))
    assert not np.array_equal(a, stratified_holdout(labels, 0.4, seed=4))


def test_resplit_60_40():
    images, _ = synthetic_faces(100)
    labels = np.array([4] * 60 + [2] * 40)
    ds = FerData(images, labels, np.zeros(100, np.int64), ("all",), "mem")
    out = resplit(ds, 0.4, seed=0)
    assert len(out.split("train")) == 60 and len(out.split("holdout")) == 40
    assert (out.split("holdout").labels == 4).sum() == 24
