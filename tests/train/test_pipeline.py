import numpy as np

from edgefer.train.config import resolve
from edgefer.train.pipeline import class_balance, epoch_order, train_dataset


def _images(n=10):
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_without_augmentation_batches_equal_preprocessing_apply():
    """Training input must be exactly what the device computes with Preprocessing.apply."""
    cfg = resolve("seed-binary", rotation=0, shear=0, hflip=False, batch_size=4, epochs=1)
    images = _images()
    ds, steps = train_dataset(images, np.arange(10, dtype=np.float32), cfg, 0)
    x, _ = next(iter(ds))
    order = epoch_order(10, cfg.seed, 0, None)[:4]
    np.testing.assert_allclose(x.numpy(), cfg.preprocessing.apply(images[order]), atol=1e-6)
    assert steps == 3 and x.shape == (4, 48, 48, 3)


def test_resumed_epoch_sees_the_same_batches():
    cfg = resolve("seed-fcn7", batch_size=4, epochs=3)
    images, targets = _images(), np.arange(10, dtype=np.float32)
    full, steps = train_dataset(images, targets, cfg, 0)
    resumed, _ = train_dataset(images, targets, cfg, 2)
    full_batches = list(full)
    assert len(full_batches) == 3 * steps
    for (xa, ya), (xb, yb) in zip(full_batches[2 * steps :], resumed):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    # augmentation is on and differs between epochs
    assert not np.array_equal(full_batches[0][0].numpy(), full_batches[steps][0].numpy())


def test_balanced_sampling_and_weights():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_balance(labels, 2)
    np.testing.assert_allclose(w, [100 / 180, 100 / 20])
    p = w[labels] / w[labels].sum()
    drawn = labels[epoch_order(100, 0, 0, p)]
    assert 30 < (drawn == 1).sum() < 70
