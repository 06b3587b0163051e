import numpy as np
import pytest

from edgefer.train.config import resolve
from edgefer.train.pipeline import (
    class_balance,
    epoch_order,
    train_batches,
    transform_matrices,
    warp,
)


def _images(n=10):
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_without_augmentation_batches_equal_preprocessing_apply():
    """Training input must be exactly what the device computes with Preprocessing.apply."""
    cfg = resolve("seed-binary", rotation=0, shear=0, hflip=False, batch_size=4, epochs=1)
    images = _images()
    ds, steps = train_batches(images, np.arange(10, dtype=np.float32), cfg, 0)
    x, _ = next(iter(ds))
    order = epoch_order(10, cfg.seed, 0, None)[:4]
    np.testing.assert_allclose(x, cfg.preprocessing.apply(images[order]), atol=1e-6)
    assert steps == 3 and x.shape == (4, 48, 48, 3)


def test_resumed_epoch_sees_the_same_batches():
    images, targets = _images(), np.arange(10, dtype=np.float32)
    cfg = resolve("seed-fcn7", batch_size=4, epochs=3, mixup=0.4)
    full, steps = train_batches(images, targets, cfg, 0)
    resumed, _ = train_batches(images, targets, cfg, 2)
    full_batches = list(full)
    resumed_batches = list(resumed)
    assert len(full_batches) == 3 * steps and len(resumed_batches) == steps
    for (xa, ya), (xb, yb) in zip(full_batches[2 * steps :], resumed_batches, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # augmentation and mixup are on and differ between epochs
    assert not np.array_equal(full_batches[0][0], full_batches[steps][0])
    assert not np.array_equal(full_batches[0][1], full_batches[steps][1])


def test_balanced_sampling_and_weights():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_balance(labels, 2)
    np.testing.assert_allclose(w, [100 / 180, 100 / 20])
    p = w[labels] / w[labels].sum()
    drawn = labels[epoch_order(100, 0, 0, p)]
    assert 30 < (drawn == 1).sum() < 70


AUGMENTATIONS = [
    {"theta": 20},
    {"zx": 1.2, "zy": 0.9},
    {"tx": 3, "ty": -5},
    {"shear": 10},
    {"flip": True},
    {"theta": -35, "tx": 3, "ty": -5, "zx": 1.2, "zy": 0.9, "shear": 10, "flip": True},
]


@pytest.mark.parametrize("params", AUGMENTATIONS)
def test_augmentation_gives_keras_image_data_generator_pixels(params, astronaut_bgr):
    """Our batched warp against ImageDataGenerator's own transform (the recipes are stated in
    its terms): same rotation, shift, shear, zoom and flip, same pixels up to float rounding."""
    import cv2
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    img = cv2.resize(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY), (48, 48)).astype(np.float32)
    keras_params = {"flip_horizontal": params.get("flip", False)} | {
        k: v for k, v in params.items() if k != "flip"
    }
    want = ImageDataGenerator(fill_mode="nearest").apply_transform(img[..., None], keras_params)
    m = transform_matrices(
        theta=np.radians([params.get("theta", 0)]),
        shear=np.radians([params.get("shear", 0)]),
        zx=[params.get("zx", 1)],
        zy=[params.get("zy", 1)],
        tx=[params.get("tx", 0)],
        ty=[params.get("ty", 0)],
        flip=[-1.0 if params.get("flip") else 1.0],
        size=48,
    )
    # The same image twice, once mirrored by its own matrix: each batch item uses its own.
    mirror = transform_matrices(0, 0, 1, 1, 0, 0, -1.0, 48)[None]
    got = warp(np.stack([img, img[:, ::-1]]), np.concatenate([m, mirror @ m]))
    np.testing.assert_allclose(got[0], want[..., 0], atol=0.01)
    np.testing.assert_allclose(got[1], want[..., 0], atol=0.01)
