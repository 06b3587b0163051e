"""Boxes and labels drawn on a frame, for `edgefer detect --save` (only when the user asks)."""

from __future__ import annotations

import cv2
import numpy as np

from edgefer.imaging import to_gray_u8


def annotate(frame: np.ndarray, detections) -> np.ndarray:
    img = np.asarray(frame)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        img = cv2.cvtColor(to_gray_u8(img), cv2.COLOR_GRAY2BGR)
    else:
        img = img.copy()
    for d in detections:
        x, y, w, h = d.box
        cv2.rectangle(img, (x, y), (x + w, y + h), (0, 200, 0), 2)
        text = f"{d.label} {d.score:.2f}"
        cv2.putText(img, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 200, 0), 1,
                    cv2.LINE_AA)
    return img
