"""Sample faces that need no download: scikit-image ships them (it comes with the [train] extra).

A video of a real face moving and scaling across a real photo (the astronaut portrait over the
coffee photo) for the device benchmarks, tests and `edgefer demo`; and the LFW faces that
scikit-image ships, for calibrating int8 models without FER2013."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def face_video_frames(frames: int = 300, size=(640, 480), seed: int = 0):
    """Yield BGR frames: the astronaut's head (about 95 px face, scaled 0.8-1.6x) drifting along a
    smooth path over the coffee photo, with slight brightness flicker and sensor noise."""
    from skimage import data

    w, h = size
    background = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (w, h))
    head = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:250, 120:340]  # face + hair
    rng = np.random.default_rng(seed)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        scale = 1.2 + 0.4 * np.sin(2 * np.pi * 1.5 * t)
        hw, hh = int(head.shape[1] * scale * 0.8), int(head.shape[0] * scale * 0.8)
        patch = cv2.resize(head, (hw, hh), interpolation=cv2.INTER_AREA)
        cx = w / 2 + (w - hw) / 2 * 0.9 * np.sin(2 * np.pi * t)
        cy = h / 2 + (h - hh) / 2 * 0.9 * np.sin(2 * np.pi * 2 * t + 0.5)
        x0, y0 = int(cx - hw / 2), int(cy - hh / 2)
        frame = background.copy()
        frame[y0 : y0 + hh, x0 : x0 + hw] = patch
        gain = 1.0 + 0.05 * np.sin(2 * np.pi * 5 * t)
        noise = rng.normal(0, 2.0, frame.shape)
        yield np.clip(frame * gain + noise, 0, 255).astype(np.uint8)


def write_face_video(path: str | Path, frames: int = 300, fps: float = 30.0, seed: int = 0) -> Path:
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for frame in face_video_frames(frames, seed=seed):
        writer.write(frame)
    writer.release()
    return path


def lfw_faces() -> np.ndarray:
    """The 100 face images of scikit-image's LFW subset as (100, 48, 48) uint8 gray (the other
    100 of the subset are not faces)."""
    from skimage import data

    faces = data.lfw_subset()[:100]  # float in [0, 1], 25x25
    return np.stack(
        [
            cv2.resize(np.round(f * 255).astype(np.uint8), (48, 48), interpolation=cv2.INTER_CUBIC)
            for f in faces
        ]
    )


# Haar's box of the astronaut's face in data.astronaut() (512x512): x, y, w, h.
ASTRONAUT_FACE = (177, 66, 95, 95)


def astronaut_head() -> np.ndarray:
    """The astronaut's face with half its side around it (190x190 BGR), the face centred."""
    from skimage import data

    fx, fy, fs, _ = ASTRONAUT_FACE
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return astronaut[fy - fs // 2 : fy + fs + fs // 2, fx - fs // 2 : fx + fs + fs // 2]


def paste_face(frame: np.ndarray, head: np.ndarray, side: int, cx: float, cy: float, mirror=False):
    """Paste `head` (astronaut_head()) scaled so that the face is `side` px, centred on (cx, cy);
    the patch (and the face) may run past the frame. Returns the face box x, y, w, h, clipped
    to the frame (None when none of it is in the frame)."""
    h, w = frame.shape[:2]
    patch = cv2.resize(head, (2 * side, 2 * side), interpolation=cv2.INTER_AREA)
    if mirror:
        patch = patch[:, ::-1]
    x0, y0 = round(cx - side), round(cy - side)
    px0, py0 = max(0, -x0), max(0, -y0)
    px1, py1 = min(2 * side, w - x0), min(2 * side, h - y0)
    if px1 > px0 and py1 > py0:
        frame[y0 + py0 : y0 + py1, x0 + px0 : x0 + px1] = patch[py0:py1, px0:px1]
    fx0, fy0 = max(0, x0 + side // 2), max(0, y0 + side // 2)
    fx1, fy1 = min(w, x0 + side // 2 + side), min(h, y0 + side // 2 + side)
    return (fx0, fy0, fx1 - fx0, fy1 - fy0) if fx1 > fx0 and fy1 > fy0 else None


def coffee_background(size=(640, 480)) -> np.ndarray:
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), size)


def faces_video_frames(
    frames: int = 300,
    faces: int = 1,
    sides: tuple[int, int] = (40, 300),
    size=(640, 480),
    seed: int = 0,
):
    """Yield (BGR frame, true face boxes): `faces` copies of the astronaut's face (every other one
    mirrored) over the coffee photo, each in its own vertical lane so none covers another, each
    drifting along its own smooth path and growing and shrinking between `sides` (face side in
    pixels, capped at half its lane's width). The pasted patch is the face and half its side
    around it; the face itself stays inside the frame, the patch may not. Boxes: x, y, w, h."""
    w, h = size
    background = coffee_background(size)
    head = astronaut_head()
    rng = np.random.default_rng(seed)
    lane = w / faces
    lo, hi = sides[0], min(sides[1], int(lane / 2), h)
    paths = [rng.uniform(0, 2 * np.pi, 3) for _ in range(faces)]
    for i in range(frames):
        t = i / max(frames - 1, 1)
        frame = background.copy()
        boxes = []
        for k, (p_size, p_x, p_y) in enumerate(paths):
            # log-size sweeps lo..hi once and back over the clip
            u = 0.5 - 0.5 * np.cos(2 * np.pi * t + p_size)
            side = round(lo * (hi / lo) ** u)
            cx = lane * k + lane / 2 + (lane / 2 - side / 2) * np.sin(2 * np.pi * 1.3 * t + p_x)
            cy = h / 2 + (h / 2 - side / 2) * 0.95 * np.sin(2 * np.pi * 0.9 * t + p_y)
            boxes.append(paste_face(frame, head, side, cx, cy, mirror=bool(k % 2)))
        noise = rng.normal(0, 2.0, frame.shape)
        yield np.clip(frame + noise, 0, 255).astype(np.uint8), boxes
