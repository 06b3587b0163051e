import numpy as np
import pytest

from edgefer.errors import EdgeferError
from edgefer.labels import parse_task
from edgefer.train.teacher import image_keys, soften, teacher_targets, write_teacher_file

NAMES = list(parse_task("fer7").class_names)


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def _probs(n, seed=1):
    p = np.random.default_rng(seed).random((n, 7)).astype(np.float32)
    return p / p.sum(axis=1, keepdims=True)


def test_keys_follow_the_pixels_not_the_position():
    imgs = _images(50)
    keys = image_keys(imgs)
    assert len(set(keys.tolist())) == 50
    assert np.array_equal(image_keys(imgs[::-1]), keys[::-1])
    changed = imgs.copy()
    changed[7, 20, 20] ^= 1  # one pixel, one bit
    assert (image_keys(changed) != keys).tolist() == [i == 7 for i in range(50)]


def test_targets_come_back_in_the_order_asked_for_any_subset(tmp_path):
    imgs, probs = _images(60), _probs(60)
    path = tmp_path / "t.npz"
    write_teacher_file(path, imgs, probs, NAMES, {"temperature": 1.0})
    order = np.random.default_rng(2).permutation(60)[:25]
    assert np.array_equal(teacher_targets(path, imgs[order], NAMES), probs[order])


def test_duplicate_images_share_one_answer(tmp_path):
    imgs, probs = _images(10), _probs(10)
    imgs[4] = imgs[2]
    path = tmp_path / "t.npz"
    write_teacher_file(path, imgs, probs, NAMES, {})
    got = teacher_targets(path, imgs, NAMES)
    assert np.array_equal(got[4], probs[2]) and np.array_equal(got[3], probs[3])


def test_images_the_teacher_never_saw_are_refused_with_a_count(tmp_path):
    path = tmp_path / "t.npz"
    write_teacher_file(path, _images(30), _probs(30), NAMES, {})
    other = np.concatenate([_images(30)[:27], _images(3, seed=9)])
    with pytest.raises(EdgeferError, match=r"t\.npz: no teacher answer for 3 of 30 training"):
        teacher_targets(path, other, NAMES)


def test_other_classes_and_other_files_are_refused(tmp_path):
    path = tmp_path / "t.npz"
    write_teacher_file(path, _images(5), _probs(5), NAMES, {})
    with pytest.raises(EdgeferError, match="teacher classes .* differ from the task's"):
        teacher_targets(path, _images(5), NAMES[::-1])
    junk = tmp_path / "junk.npz"
    np.savez(junk, probs=np.zeros(3))
    with pytest.raises(EdgeferError, match=r"junk\.npz: not a teacher file"):
        teacher_targets(junk, _images(5), NAMES)
    with pytest.raises(EdgeferError, match=r"gone\.npz: teacher file not found"):
        teacher_targets(tmp_path / "gone.npz", _images(5), NAMES)


def test_temperature_flattens_without_changing_the_answer():
    p = _probs(40)
    assert np.allclose(soften(p, 1.0), p, atol=1e-6)
    hot, cold = soften(p, 3.0), soften(p, 0.5)
    entropy = lambda q: -(q * np.log(q)).sum(axis=1)
    assert (entropy(hot) > entropy(p)).all() and (entropy(cold) < entropy(p)).all()
    assert np.array_equal(hot.argmax(1), p.argmax(1))
    assert np.allclose(hot.sum(axis=1), 1, atol=1e-6)
    # softmax(log p / T) for T = 2 is sqrt(p), renormalised
    root = np.sqrt(p) / np.sqrt(p).sum(axis=1, keepdims=True)
    assert np.allclose(soften(p, 2.0), root, atol=1e-6)
