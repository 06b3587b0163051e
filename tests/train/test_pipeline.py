import numpy as np
import pytest

from edgefer.tf import tf
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
    """Our batched op against ImageDataGenerator's own transform (the recipes are stated in its
    terms): same rotation, shift, shear, zoom and flip, same pixels up to float rounding."""
    import cv2
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    from edgefer.train.pipeline import transform_matrices

    img = cv2.resize(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY), (48, 48)).astype(np.float32)
    keras_params = {"flip_horizontal": params.get("flip", False)} | {
        k: v for k, v in params.items() if k != "flip"
    }
    want = ImageDataGenerator(fill_mode="nearest").apply_transform(img[..., None], keras_params)

    def one(name, default):
        return tf.constant([params.get(name, default)], tf.float32)

    m = transform_matrices(
        one("theta", 0) * np.pi / 180,
        one("shear", 0) * np.pi / 180,
        one("zx", 1),
        one("zy", 1),
        one("tx", 0),
        one("ty", 0),
        tf.constant([-1.0 if params.get("flip") else 1.0]),
        48,
    )
    got = tf.raw_ops.ImageProjectiveTransformV3(
        images=img[None, ..., None],
        transforms=m,
        output_shape=[48, 48],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    np.testing.assert_allclose(got.numpy()[0], want, atol=0.01)
