"""`--save`: annotated frames written as one image or a video, replacing the target only when the
run succeeds. Faces are personal data: nothing is written unless a target is given."""

from __future__ import annotations

import contextlib
from pathlib import Path

from edgefer.errors import EdgeferError

IMAGE_TARGETS = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_TARGETS = {".mp4": "mp4v", ".avi": "MJPG"}  # suffix -> fourcc
DEFAULT_FPS = 15.0  # for a video made from a folder of images, or a source that gives no rate


def save_target(save: str | None, kind: str) -> Path | None:
    """The --save path, checked before anything runs: a format OpenCV writes, and an image only
    for a single image (every frame would overwrite it)."""
    if save is None:
        return None
    path = Path(save)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_TARGETS and suffix not in VIDEO_TARGETS:
        raise EdgeferError(
            f"--save {path}: cannot write '{suffix}'; expected an image "
            f"({', '.join(IMAGE_TARGETS)}) or a video ({', '.join(VIDEO_TARGETS)})"
        )
    if suffix in IMAGE_TARGETS and kind != "image":
        raise EdgeferError(
            f"--save {path}: a {kind} has many frames and one image would keep only "
            f"the last; save to a video ({', '.join(VIDEO_TARGETS)})"
        )
    return path


class Saver:
    """One annotated image, or a video of annotated frames at the source's frame rate (`fps`, or
    DEFAULT_FPS when the source gives none). Written to a temporary file that replaces the target
    only when the command succeeds (the ExitStack's job). With no path it saves nothing."""

    def __init__(self, path: Path | None, fps: float | None, stack: contextlib.ExitStack):
        self.path, self.fps, self.stack = path, fps or DEFAULT_FPS, stack
        self.writer = self.size = None

    def add(self, image, detections):
        if self.path is None:
            return
        import cv2

        from edgefer.atomic import atomic_file
        from edgefer.device.draw import annotate, letterbox

        img = annotate(image, detections)
        if self.path.suffix.lower() in IMAGE_TARGETS:
            with atomic_file(self.path) as tmp:
                if not cv2.imwrite(str(tmp), img):
                    raise EdgeferError(f"{self.path}: OpenCV cannot write this image")
            return
        if self.writer is None:
            tmp = self.stack.enter_context(atomic_file(self.path))
            self.size = (img.shape[1], img.shape[0])
            fourcc = VIDEO_TARGETS[self.path.suffix.lower()]
            self.writer = cv2.VideoWriter(
                str(tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size
            )
            self.stack.callback(self.writer.release)  # runs before the rename
            if not self.writer.isOpened():
                raise EdgeferError(f"{self.path}: OpenCV cannot write {fourcc} video here")
        self.writer.write(letterbox(img, *self.size))
