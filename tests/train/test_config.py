import pytest

from edgefer.errors import EdgeferError
from edgefer.train.config import resolve


def test_paper_recipes_are_defaults():
    p1 = resolve("seed-binary")
    assert (
        p1.task,
        p1.normalization,
        p1.channels,
        p1.batch_size,
        p1.rotation,
        p1.shear,
        p1.val_fraction,
    ) == ("sad-vs-fear", "zero_one", 3, 64, 20, 0.2, 0.4)
    p2 = resolve("seed-fcn7")
    assert (
        p2.normalization,
        p2.rotation,
        p2.shift,
        p2.zoom_min,
        p2.zoom_max,
        p2.batch_size,
        p2.dropout,
    ) == ("minus_one_one", 90, 10, 0.7, 1.3, 32, 0.6)


def test_file_then_flags_override(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("epochs = 7\nbatch_size = 16\nbalance = 'weights'\n")
    cfg = resolve("seed-fcn7", str(f), batch_size=128, epochs=None)
    assert (cfg.epochs, cfg.batch_size, cfg.balance) == (7, 128, "weights")


def test_bad_config(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"epochz": 3}')
    with pytest.raises(EdgeferError, match="unknown field epochz"):
        resolve("edge", str(f))
    with pytest.raises(EdgeferError, match="dropout = 1.5: out of range"):
        resolve("edge", dropout=1.5)
    with pytest.raises(EdgeferError, match="task 'fer8'"):
        resolve("edge", task="fer8")


def test_distillation_needs_a_teacher_and_a_softmax_student():
    assert resolve("edge", teacher="t.npz", distill=0.7).distill == 0.7
    with pytest.raises(EdgeferError, match="distill = 0.7: out of range"):
        resolve("edge", distill=0.7)  # no teacher file to distil from
    with pytest.raises(EdgeferError, match="distill = 0.0: out of range"):
        resolve("edge", teacher="t.npz")  # a teacher nobody listens to
    with pytest.raises(EdgeferError, match="distill = 1.5: out of range"):
        resolve("edge", teacher="t.npz", distill=1.5)
    with pytest.raises(EdgeferError, match="teacher = 't.npz': out of range"):
        resolve("seed-binary", teacher="t.npz", distill=0.5)
