"""The training input pipeline: tf.data, augmentation batched in one graph op, no Python per image.

Randomness is stateless and keyed by (seed, epoch, batch): shuffling, balanced sampling and
augmentation of epoch e are the same whether the run went straight through or was resumed at e.
"""

from __future__ import annotations

import math

import numpy as np

from edgefer.tf import tf


def epoch_order(n: int, seed: int, epoch: int, sample_p: np.ndarray | None) -> np.ndarray:
    """Item indices for one epoch: a permutation, or a class-balanced draw with replacement."""
    rng = np.random.default_rng([seed, epoch])
    if sample_p is None:
        return rng.permutation(n)
    p = np.asarray(sample_p, np.float64)
    return rng.choice(n, size=n, replace=True, p=p / p.sum())


def class_balance(labels: np.ndarray, k: int) -> np.ndarray:
    """Per-class weight n / (k * count): what each class needs to weigh as much as the others."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return (len(labels) / (k * np.maximum(counts, 1))).astype(np.float32)


def augment_matrices(n, seed, cfg, size: int):
    """(n, 8) projective transforms, output -> input pixel, like Keras' ImageDataGenerator:
    rotation and shear in degrees, shifts in pixels, independent x/y zoom, horizontal flip."""
    u = tf.random.stateless_uniform((n, 7), seed=seed)
    theta = (2 * u[:, 0] - 1) * np.deg2rad(cfg.rotation)
    shear = (2 * u[:, 1] - 1) * np.deg2rad(cfg.shear)
    zx = cfg.zoom_min + u[:, 2] * (cfg.zoom_max - cfg.zoom_min)
    zy = cfg.zoom_min + u[:, 3] * (cfg.zoom_max - cfg.zoom_min)
    tx = (2 * u[:, 4] - 1) * cfg.shift
    ty = (2 * u[:, 5] - 1) * cfg.shift
    flip = tf.where(u[:, 6] < 0.5, -1.0, 1.0) if cfg.hflip else tf.ones_like(tx)
    return transform_matrices(theta, shear, zx, zy, tx, ty, flip, size)


def transform_matrices(theta, shear, zx, zy, tx, ty, flip, size: int):
    """(n, 8) transforms for given parameters (radians, pixels; flip -1 mirrors), each (n,)."""
    n = tf.shape(theta)[0]
    c = (size - 1) / 2.0
    cos, sin = tf.cos(theta), tf.sin(theta)
    one, zero = tf.ones_like(tx), tf.zeros_like(tx)

    def mat(rows):
        return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)

    center = mat([[one, zero, one * c], [zero, one, one * c], [zero, zero, one]])
    uncenter = mat([[one, zero, -one * c], [zero, one, -one * c], [zero, zero, one]])
    # Keras' order: rotate, shift, shear, zoom about the centre, and mirror the result.
    m = (
        center
        @ mat([[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]])
        @ mat([[one, zero, tx], [zero, one, ty], [zero, zero, one]])
        @ mat([[one, -tf.sin(shear), zero], [zero, tf.cos(shear), zero], [zero, zero, one]])
        @ mat([[zx, zero, zero], [zero, zy, zero], [zero, zero, one]])
        @ mat([[flip, zero, zero], [zero, one, zero], [zero, zero, one]])
        @ uncenter
    )
    return tf.reshape(m, (n, 9))[:, :8]


def mixup(x, y, seed, alpha: float):
    """Mix each image and target with the batch's reversed order by lambda ~ Beta(alpha, alpha)
    (two stateless gammas), keyed like the augmentation so resumed epochs mix the same pairs."""
    n = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    g1 = tf.random.stateless_gamma([n], seeds[0], alpha)
    g2 = tf.random.stateless_gamma([n], seeds[1], alpha)
    lam = g1 / (g1 + g2)
    lx = tf.reshape(lam, [-1, 1, 1, 1])
    ly = tf.reshape(lam, [-1] + [1] * (len(y.shape) - 1))
    return lx * x + (1 - lx) * x[::-1], ly * y + (1 - ly) * tf.cast(y[::-1], y.dtype)


def train_dataset(
    images: np.ndarray,
    targets: np.ndarray,
    cfg,
    initial_epoch: int,
    weights: np.ndarray | None = None,
    sample_p: np.ndarray | None = None,
    full_batches_only: bool = False,
):
    """Batches for epochs initial_epoch .. cfg.epochs-1, as one dataset for one `fit` call.

    images: (N, S, S) uint8; targets: (N, ...) float32; weights: per-item loss weights.
    Normalisation is x * scale + offset in float32, the same arithmetic as Preprocessing.apply.
    `full_batches_only` drops each epoch's last partial batch: under tf.distribute, Keras fails
    on a batch that does not split evenly across replicas.
    """
    prep = cfg.preprocessing
    n, size = len(images), images.shape[1]
    images_t = tf.constant(images[..., None])
    targets_t = tf.constant(targets)
    weights_t = None if weights is None else tf.constant(weights)

    def order(epoch):
        return epoch_order(n, cfg.seed, int(epoch), sample_p).astype(np.int64)

    def epoch_batches(epoch):
        idx = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
        idx.set_shape([n])
        batches = (
            tf.data.Dataset.from_tensor_slices(idx)
            .batch(cfg.batch_size, drop_remainder=full_batches_only)
            .enumerate()
        )
        return batches.map(lambda i, b: (epoch, i, b))

    def make_batch(epoch, i, idx):
        x = tf.cast(tf.gather(images_t, idx), tf.float32)
        b = tf.shape(idx)[0]
        seed = tf.stack([tf.cast(cfg.seed, tf.int64), epoch * 1_000_003 + i])
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=augment_matrices(b, seed, cfg, size),
            output_shape=[size, size],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="NEAREST",
        )
        x = x * np.float32(prep.scale) + np.float32(prep.offset)
        if prep.channels == 3:
            x = tf.repeat(x, 3, axis=-1)
        x.set_shape([None, size, size, prep.channels])
        y = tf.gather(targets_t, idx)
        if cfg.mixup > 0:
            x, y = mixup(x, y, tf.stack([seed[0] + 1, seed[1]]), cfg.mixup)
        if weights_t is None:
            return x, y
        return x, y, tf.gather(weights_t, idx)

    ds = tf.data.Dataset.range(initial_epoch, cfg.epochs).flat_map(epoch_batches)
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    steps = n // cfg.batch_size if full_batches_only else math.ceil(n / cfg.batch_size)
    return ds.prefetch(tf.data.AUTOTUNE), steps
