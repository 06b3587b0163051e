"""The model zoo: the two published designs edgefer started from, and our own edge model.

Imports Keras: only training, evaluation and conversion use this module, never the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgefer.tf import keras

layers = keras.layers

from edgefer.errors import EdgeferError


def seed_binary(num_classes: int = 2, input_shape=(48, 48, 3), dropout: float = 0.0) -> keras.Model:
    """ "Classification of Sad Emotions and Depression Through Images Using CNN": four valid 3x3
    convs (32-64-128-256), each + MaxPool 2x2, Dense 512, one sigmoid. 520,513 parameters."""
    if num_classes != 2:
        raise EdgeferError(
            f"arch seed-binary: has one sigmoid output, so it needs a 2-class task, "
            f"got {num_classes} classes"
        )
    x = inputs = keras.Input(input_shape, name="image")
    for filters in (32, 64, 128, 256):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="prob")(x)
    return keras.Model(inputs, outputs, name="seed_binary")


def seed_fcn7(
    num_classes: int = 7, input_shape=(48, 48, 1), dropout: float = 0.6, head_pooling: str = "max"
) -> keras.Model:
    """ "Deteksi Ekspresi Wajah Menggunakan Tensorflow": four blocks of [Conv+BN, Conv+BN, ReLU,
    MaxPool, Dropout] with 16 (7x7), 32 (5x5), 64 (3x3), 128 (3x3) filters, then Conv 256 + BN,
    Conv k, global max pooling, softmax; 'same' padding. 642,935 parameters for 7 classes."""
    x = inputs = keras.Input(input_shape, name="image")
    for filters, k in ((16, 7), (32, 5), (64, 3), (128, 3)):
        x = layers.Conv2D(filters, k, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Conv2D(filters, k, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Conv2D(256, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Conv2D(num_classes, 3, padding="same")(x)
    x = global_pooling(head_pooling)(x)
    outputs = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="seed_fcn7")


def global_pooling(kind: str):
    """The head's global pooling: "max" (paper 2 says max) or "avg" (the Keras example it follows)."""
    if kind not in ("max", "avg"):
        raise EdgeferError(f"head_pooling '{kind}': expected max or avg")
    return layers.GlobalMaxPooling2D() if kind == "max" else layers.GlobalAveragePooling2D()


def _conv_bn_relu(x, filters, kernel=3):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU(6.0)(x)


def _separable_block(x, filters, stride=1):
    """Depthwise 3x3 + pointwise 1x1 (MobileNet style), with a residual Add when shapes allow."""
    shortcut = x
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU(6.0)(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if stride == 1 and shortcut.shape[-1] == filters:
        y = layers.Add()([shortcut, y])
    return layers.ReLU(6.0)(y)


def edge(
    num_classes: int = 7,
    input_shape=(48, 48, 1),
    dropout: float = 0.4,
    head_pooling: str = "avg",
    width: float = 1.0,
) -> keras.Model:
    """Our int8 edge model: full 3x3 convs where the feature maps are large and cheap in
    channels, depthwise-separable residual blocks deeper down. Only ops that XNNPACK and the Edge
    TPU compiler map (Conv, DepthwiseConv, BN folded at conversion, ReLU6, Add, pooling, Dense,
    Softmax), static 48x48x1 input, 0.7M parameters at width 1. `width` scales every layer's
    channels (multiples of 8, which int8 kernels vectorise best); parameters grow as width^2."""

    def ch(channels: int) -> int:
        return max(8, round(channels * width / 8) * 8)

    x = inputs = keras.Input(input_shape, name="image")
    x = _conv_bn_relu(x, ch(32))
    x = _conv_bn_relu(x, ch(32))
    x = layers.MaxPooling2D(2)(x)  # 24x24
    x = _conv_bn_relu(x, ch(64))
    x = _conv_bn_relu(x, ch(64))
    x = layers.MaxPooling2D(2)(x)  # 12x12
    x = _conv_bn_relu(x, ch(128))
    x = _separable_block(x, ch(128))
    x = _separable_block(x, ch(128))
    x = layers.MaxPooling2D(2)(x)  # 6x6
    x = _conv_bn_relu(x, ch(256))
    x = _separable_block(x, ch(256))
    x = _conv_bn_relu(x, ch(512), kernel=1)
    x = global_pooling(head_pooling)(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="edge")


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable[..., keras.Model]
    summary: str


ARCHS = {
    "seed-binary": Arch("seed-binary", seed_binary, "paper 1: 4-conv binary CNN (sad vs fear)"),
    "seed-fcn7": Arch("seed-fcn7", seed_fcn7, "paper 2: 7-class fully-convolutional CNN, BN, GMP"),
    "edge": Arch("edge", edge, "edgefer's int8 edge model (conv + depthwise residual, ReLU6)"),
}


def get_arch(name: str) -> Arch:
    if name not in ARCHS:
        raise EdgeferError(f"arch '{name}': expected one of {', '.join(ARCHS)}")
    return ARCHS[name]


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (batch 1): conv, depthwise conv and dense layers."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            macs += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            cin = layer.input.shape[-1]
            macs += h * w * c * cin * layer.kernel_size[0] * layer.kernel_size[1] // layer.groups
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)
