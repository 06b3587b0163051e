"""Preprocessing as data: the one description of how pixels become model input.

It is stored with every trained model and in every bundle manifest, and both training and the
device apply it through `Preprocessing.apply`, so the two can never drift apart (a mismatch is the
first cause of int8 accuracy collapse).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgefer.errors import EdgeferError, shown
from edgefer.imaging import resize_square

# name -> (scale, offset): model input x = pixel * scale + offset
NORMALIZATIONS = {
    "zero_one": (1.0 / 255.0, 0.0),  # x = p/255 (paper 1)
    "minus_one_one": (2.0 / 255.0, -1.0),  # x = (p/255 - 0.5) * 2 (paper 2)
}


@dataclass(frozen=True)
class Preprocessing:
    size: int = 48
    channels: int = 1
    normalization: str = "zero_one"

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise EdgeferError(
                f"preprocessing.normalization '{shown(self.normalization)}': expected one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        if self.channels not in (1, 3):
            raise EdgeferError(f"preprocessing.channels {self.channels}: expected 1 or 3")
        if not 8 <= self.size <= 1024:
            raise EdgeferError(f"preprocessing.size {self.size}: expected 8..1024")

    @property
    def scale(self) -> float:
        return NORMALIZATIONS[self.normalization][0]

    @property
    def offset(self) -> float:
        return NORMALIZATIONS[self.normalization][1]

    @property
    def value_range(self) -> tuple[float, float]:
        return (self.offset, 255 * self.scale + self.offset)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def apply(self, gray_u8: np.ndarray) -> np.ndarray:
        """uint8 gray images (N,H,W) or one (H,W) -> float32 model input (N,size,size,channels)."""
        imgs = np.asarray(gray_u8)
        if imgs.ndim == 2:
            imgs = imgs[None]
        if imgs.shape[1:] != (self.size, self.size):
            imgs = np.stack([resize_square(im, self.size) for im in imgs])
        x = imgs.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        x = x[..., None]
        if self.channels == 3:
            x = np.repeat(x, 3, axis=-1)
        return x

    def to_dict(self) -> dict:
        return {**asdict(self), "scale": self.scale, "offset": self.offset}

    @classmethod
    def from_dict(cls, d: dict, where: str = "preprocessing") -> Preprocessing:
        if not isinstance(d, dict):
            raise EdgeferError(f"{where}: expected an object with size, channels, normalization")
        try:
            return cls(
                size=int(d["size"]),
                channels=int(d["channels"]),
                normalization=str(d["normalization"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise EdgeferError(
                f"{where}: expected size, channels and normalization ({exc!r})"
            ) from None
