import numpy as np

from edgefer.benchmark import _disagreements


def test_disagreements_count_int8_ties_and_float_margins():
    ref = np.array([[0.50, 0.49, 0.01], [0.2, 0.7, 0.1], [0.6, 0.1, 0.3]], np.float32)
    ref_top2 = np.sort(ref, axis=1)[:, -2:]
    quantized = np.array(
        [
            [0.5, 0.5, 0.0],  # tied: argmax takes class 0, agrees
            [0.4, 0.4, 0.2],  # tied: argmax takes class 0, disagrees
            [0.3, 0.1, 0.6],
        ]
    )  # a real flip
    out = _disagreements(quantized, ref.argmax(axis=1), ref_top2)
    assert out["count"] == 2 and out["tied"] == 1
    assert np.isclose(out["ref_margin_median"], np.median([0.5, 0.3]))


def test_no_disagreement_has_no_margin():
    ref = np.eye(3, dtype=np.float32)
    out = _disagreements(ref, ref.argmax(axis=1), np.sort(ref, axis=1)[:, -2:])
    assert out == {"count": 0, "tied": 0, "ref_margin_median": None}
