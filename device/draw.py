"""Boxes and labels drawn on a frame, only when the user asks: `edgefer detect --save`, and the
daemon's status page preview (`preview = true`), which is encoded in memory and never stored."""

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
        cv2.putText(
            img,
            text,
            (x, max(12, y - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 200, 0),
            1,
            cv2.LINE_AA,
        )
    return img


def annotated_jpeg(frame: np.ndarray, detections, quality: int = 80) -> bytes:
    """The annotated frame as JPEG bytes, encoded in memory (the preview never touches disk).
    annotate() always gives 8-bit BGR, which the JPEG encoder always takes."""
    image = annotate(frame, detections)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def letterbox(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """`img` scaled to fit width x height and centred on black: a video has one frame size
    (VideoWriter drops frames of any other size without a word), and a face must not be
    stretched to fill it."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(
        img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = resized
    return out
