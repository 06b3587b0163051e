"""The training input pipeline: numpy batches, augmentation vectorised over the batch.

Plain numpy, so one pipeline feeds Keras on every backend (TensorFlow on a CPU, JAX on a GPU
box that has no TensorFlow). Worker threads build the next batches while the model steps.
Randomness is keyed by (seed, epoch, batch): shuffling, balanced sampling, augmentation and
mixup of epoch e are the same whether the run went straight through or was resumed at e.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Batches built ahead of the one the model is on; enough to hide a slow batch behind a fast step.
PREFETCH = 8


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


def augment_matrices(rng: np.random.Generator, n: int, cfg, size: int) -> np.ndarray:
    """(n, 3, 3) transforms, output -> input pixel, like Keras' ImageDataGenerator:
    rotation and shear in degrees, shifts in pixels, independent x/y zoom, horizontal flip."""
    u = rng.random((n, 7))
    return transform_matrices(
        theta=(2 * u[:, 0] - 1) * np.deg2rad(cfg.rotation),
        shear=(2 * u[:, 1] - 1) * np.deg2rad(cfg.shear),
        zx=cfg.zoom_min + u[:, 2] * (cfg.zoom_max - cfg.zoom_min),
        zy=cfg.zoom_min + u[:, 3] * (cfg.zoom_max - cfg.zoom_min),
        tx=(2 * u[:, 4] - 1) * cfg.shift,
        ty=(2 * u[:, 5] - 1) * cfg.shift,
        flip=np.where(u[:, 6] < 0.5, -1.0, 1.0) if cfg.hflip else np.ones(n),
        size=size,
    )


def transform_matrices(theta, shear, zx, zy, tx, ty, flip, size: int) -> np.ndarray:
    """(n, 3, 3) transforms for given parameters (radians, pixels; flip -1 mirrors), each (n,)."""
    theta, shear, zx, zy, tx, ty, flip = np.broadcast_arrays(
        *(np.asarray(v, np.float64) for v in (theta, shear, zx, zy, tx, ty, flip))
    )
    one, zero = np.ones_like(tx), np.zeros_like(tx)
    c = (size - 1) / 2.0

    def mat(rows):
        return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)

    def move(dx, dy):
        return mat([[one, zero, dx], [zero, one, dy], [zero, zero, one]])

    cos, sin = np.cos(theta), np.sin(theta)
    # Keras' order: rotate, shift, shear, zoom about the centre, and mirror the result.
    return (
        move(one * c, one * c)
        @ mat([[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]])
        @ move(tx, ty)
        @ mat([[one, -np.sin(shear), zero], [zero, np.cos(shear), zero], [zero, zero, one]])
        @ mat([[zx, zero, zero], [zero, zy, zero], [zero, zero, one]])
        @ mat([[flip, zero, zero], [zero, one, zero], [zero, zero, one]])
        @ move(-one * c, -one * c)
    )


def warp(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Bilinear resampling of (n, S, S) images at matrices @ (column, row, 1) of every output
    pixel, edge pixels repeated outside: scipy's `affine_transform(order=1, mode="nearest")`,
    which ImageDataGenerator uses, without a Python loop over images."""
    n, size = images.shape[0], images.shape[1]
    src = matrices[:, :2].astype(np.float32) @ _pixel_grid(size)  # (n, 2, S*S): column, row
    x = np.clip(src[:, 0], 0, size - 1)
    y = np.clip(src[:, 1], 0, size - 1)
    x0 = np.minimum(x.astype(np.intp), size - 2)  # floor: x >= 0 here
    y0 = np.minimum(y.astype(np.intp), size - 2)
    fx, fy = x - x0, y - y0
    i00 = (np.arange(n) * size * size)[:, None] + y0 * size + x0
    flat = images.reshape(-1).astype(np.float32)
    top = flat[i00] * (1 - fx) + flat[i00 + 1] * fx
    bottom = flat[i00 + size] * (1 - fx) + flat[i00 + size + 1] * fx
    return (top * (1 - fy) + bottom * fy).reshape(n, size, size)


@functools.cache
def _pixel_grid(size: int) -> np.ndarray:
    """(3, S*S) homogeneous (column, row, 1) of every pixel, row-major."""
    rows, cols = np.mgrid[0:size, 0:size].reshape(2, -1)
    return np.stack([cols, rows, np.ones_like(cols)]).astype(np.float32)


def mixup(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, alpha: float):
    """Mix each image and target with the batch's reversed order by lambda ~ Beta(alpha, alpha)."""
    lam = rng.beta(alpha, alpha, len(x)).astype(np.float32)
    lx = lam.reshape(-1, *[1] * (x.ndim - 1))
    ly = lam.reshape(-1, *[1] * (y.ndim - 1))
    return lx * x + (1 - lx) * x[::-1], ly * y + (1 - ly) * y[::-1]


def train_batches(
    images: np.ndarray,
    targets: np.ndarray,
    cfg,
    initial_epoch: int,
    weights: np.ndarray | None = None,
    sample_p: np.ndarray | None = None,
    full_batches_only: bool = False,
    workers: int = 4,
):
    """Batches for epochs initial_epoch .. cfg.epochs-1, as one generator for one `fit` call,
    and the number of batches per epoch.

    images: (N, S, S) uint8; targets: (N, ...) float32; weights: per-item loss weights.
    Normalisation is x * scale + offset in float32, the same arithmetic as Preprocessing.apply.
    `full_batches_only` drops each epoch's last partial batch: under tf.distribute, Keras fails
    on a batch that does not split evenly across replicas.
    """
    n, size = len(images), images.shape[1]
    steps = n // cfg.batch_size if full_batches_only else math.ceil(n / cfg.batch_size)

    def make_batch(epoch: int, i: int, idx: np.ndarray):
        rng = np.random.default_rng([cfg.seed, epoch, i])
        x = warp(images[idx], augment_matrices(rng, len(idx), cfg, size))
        x = cfg.preprocessing.apply(x)
        y = targets[idx]
        if cfg.mixup > 0:
            x, y = mixup(rng, x, y, cfg.mixup)
        return (x, y) if weights is None else (x, y, weights[idx])

    def keys():
        for epoch in range(initial_epoch, cfg.epochs):
            order = epoch_order(n, cfg.seed, epoch, sample_p)
            for i in range(steps):
                yield epoch, i, order[i * cfg.batch_size : (i + 1) * cfg.batch_size]

    def generate():
        with ThreadPoolExecutor(workers) as pool:
            ahead = deque()
            for key in keys():
                ahead.append(pool.submit(make_batch, *key))
                if len(ahead) > PREFETCH:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    return generate(), steps
