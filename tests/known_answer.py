"""A model whose right answer is known from its input, for end-to-end known-answer tests.

The image is cut into eight horizontal bands of 6 rows. Class k < 6 is "band k is bright"; class
6 (neutral) is "no band is bright". The model computes exactly that with fixed weights:

    x = pixel * 2/255 - 1                      (the minus_one_one preprocessing)
    logit_k = GAIN * mean(relu(x) over band k)   for k < 6
    logit_6 = GAIN * NEUTRAL_BIAS
    scores  = softmax(logits)

so `expected_scores` gives every format's scores in numpy, independent of edgefer. Neutral images
are mid-gray (just below the ReLU's zero), so a model fed with the wrong zero point or scale sees
bright bands everywhere and changes its *label*, not only its scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefer.labels import FER7

BAND = 6
GAIN = 4.0
NEUTRAL_BIAS = 0.3
SIZE = 48


def build_model(class_order=tuple(range(7))):
    """The known-answer Keras model; `class_order` permutes its outputs (a look-alike model with
    the same tensors but other answers)."""
    from edgefer.tf import keras

    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = layers.ReLU()(inputs)
    x = layers.AveragePooling2D((BAND, SIZE))(x)  # (8, 1, 1): each band's mean
    x = layers.Flatten()(x)
    dense = layers.Dense(7, name="logits")
    x = dense(x)
    outputs = layers.Softmax(name="probs")(x)
    model = keras.Model(inputs, outputs, name="known_answer")
    w = np.zeros((8, 7), np.float32)
    b = np.zeros(7, np.float32)
    for k in range(6):
        w[k, class_order[k]] = GAIN
    b[class_order[6]] = GAIN * NEUTRAL_BIAS
    dense.set_weights([w, b])
    return model


def expected_scores(gray: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 gray -> (N, 7) scores, in float64 numpy."""
    x = np.asarray(gray, np.float64) * (2 / 255) - 1
    bands = np.maximum(x, 0).reshape(len(x), 8, BAND, SIZE).mean(axis=(2, 3))
    logits = np.concatenate([GAIN * bands[:, :6], np.full((len(x), 1), GAIN * NEUTRAL_BIAS)], 1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_image(k: int, fg: int = 230, bg: int = 40, neutral: int = 110) -> np.ndarray:
    """48x48 gray: band k at `fg` on `bg`, or (k = 6) a flat `neutral` gray."""
    if k == 6:
        return np.full((SIZE, SIZE), neutral, np.uint8)
    img = np.full((SIZE, SIZE), bg, np.uint8)
    img[k * BAND : (k + 1) * BAND] = fg
    return img


def dataset(variants: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Every class in `variants` brightness variations: (N, 48, 48) uint8, labels."""
    images, labels = [], []
    for v in range(variants):
        for k in range(7):
            images.append(class_image(k, fg=255 - 20 * v, bg=10 + 25 * v, neutral=95 + 12 * v))
            labels.append(k)
    return np.stack(images), np.array(labels)


def bgr(gray_value: int) -> tuple[int, int, int]:
    """A colour with distinct B, G and R whose BGR->gray value (OpenCV's weights) is
    `gray_value`: read as RGB by mistake, it turns into another gray."""
    for b in range(256):
        r = int(np.clip(gray_value - 90 + (b // 2), 0, 255))
        g = round((gray_value - 0.114 * b - 0.299 * r) / 0.587)
        if 0 <= g <= 255 and abs(b - r) > 60 and to_gray((b, g, r)) == gray_value:
            return b, g, r
    raise ValueError(f"no distinct-channel colour for gray {gray_value}")


def to_gray(colour) -> int:
    """OpenCV's BGR->gray in its own fixed-point arithmetic (0.114 B + 0.587 G + 0.299 R)."""
    b, g, r = (int(c) for c in colour)
    return (b * 1868 + g * 9617 + r * 4899 + (1 << 13)) >> 14


BOX = (200, 120, 96, 96)  # x, y, w, h of the "face" in a frame


def colour_frame(gray_face: np.ndarray) -> np.ndarray:
    """A 480x640 BGR frame holding `gray_face` at BOX, 2x upscaled, drawn in distinct-channel
    colours (so the frame's gray at BOX, shrunk back to 48x48, is exactly `gray_face`)."""
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:] = (90, 20, 160)
    x, y, w, h = BOX
    big = np.kron(gray_face, np.ones((2, 2), np.uint8))
    palette = {int(v): bgr(int(v)) for v in np.unique(gray_face)}
    frame[y : y + h, x : x + w] = np.array(
        [palette[int(v)] for v in big.ravel()], np.uint8
    ).reshape(h, w, 3)
    return frame


def write_csv(path: Path) -> Path:
    """The dataset as a FER2013-style CSV: every class in Training, PublicTest and PrivateTest."""
    images, labels = dataset()
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        lines += [
            f"{lab},{' '.join(map(str, img.ravel()))},{usage}" for img, lab in zip(images, labels)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def save_model(path: Path, class_order=tuple(range(7))) -> Path:
    """The model as a .keras file with the model card `edgefer convert` reads."""
    from edgefer.model_card import write_card
    from edgefer.preprocess import Preprocessing

    build_model(class_order).save(path)
    prep = Preprocessing(normalization="minus_one_one")
    write_card(
        path,
        {
            "arch": "known-answer",
            "task": "fer7",
            "class_names": list(FER7),
            "preprocessing": prep.to_dict(),
            "input_shape": list(prep.input_shape),
            "labels": "fer",
            "binary_sigmoid": False,
        },
    )
    return path
