"""blazeface-track: a face that walks in is found by the rescan; a face at the frame's edge is not
lost by its crop; the kind is in the registry with its own option names and bundle check."""

import numpy as np
import pytest

from edgefer.bundled import default_bundle
from edgefer.device.blazeface_track import BlazeFaceTracker, TrackConfig
from edgefer.device.detector import iou
from edgefer.device.detectors import DETECTORS, DetectorContext
from edgefer.device.manifest import load_manifest
from edgefer.device.pipeline import Pipeline
from edgefer.device.pipeline_config import PipelineConfig
from edgefer.errors import EdgeferError
from edgefer.imaging import to_gray_u8
from edgefer.samples import astronaut_head, coffee_background, paste_face


def tracker(**options) -> BlazeFaceTracker:
    bundle = default_bundle()
    config = PipelineConfig(detector={"kind": "blazeface-track", **options}).detector
    return config.build(DetectorContext(bundle, load_manifest(bundle)))


@pytest.fixture(scope="module")
def head():
    return astronaut_head()


def found(truth, boxes) -> bool:
    return any(iou(truth, b) >= 0.3 for b in boxes)


def test_a_face_that_walks_in_is_found_by_the_next_rescan(head):
    """Face A from the first frame; face B appears at frame 10. With a rescan every 5 frames B
    must be found by frame 14 and stay found; A must stay found throughout."""
    det = tracker(track_rescan_every=5)
    background = coffee_background()
    for i in range(30):
        frame = background.copy()
        a = paste_face(frame, head, 80, 160 + 2 * i, 240)
        b = paste_face(frame, head, 70, 470, 200 + i, mirror=True) if i >= 10 else None
        boxes = det(to_gray_u8(frame))
        assert found(a, boxes), (i, a, boxes)
        if i >= 14:
            assert found(b, boxes), f"frame {i}: the face that walked in at 10 is not found"


def test_a_lost_face_is_searched_for_on_the_next_frames_not_only_at_the_next_rescan(head):
    """The face vanishes for a frame (the frame that loses it finds it nowhere), then comes back
    far from where it was: it must be found on the frame it is back, not 13 frames later at the
    scheduled rescan."""
    det = tracker(track_rescan_every=15, track_tile=0)
    background = coffee_background()
    for i in range(4):
        frame = background.copy()
        a = paste_face(frame, head, 110, 180, 240)
        assert found(a, det(to_gray_u8(frame))), i
    assert det(to_gray_u8(background.copy())) == []  # lost, and not in the frame at all
    frame = background.copy()
    back = paste_face(frame, head, 110, 470, 220)
    assert found(back, det(to_gray_u8(frame))), "the face came back and is not searched for"


@pytest.mark.parametrize(
    "path",
    [
        ((200, 240), (15, 240)),  # to the left edge: a third of the face outside the frame
        ((440, 240), (625, 240)),  # right
        ((320, 200), (320, 15)),  # top
        ((320, 280), (320, 465)),  # bottom
    ],
    ids=["left", "right", "top", "bottom"],
)
def test_the_crop_keeps_a_face_at_the_frame_edge(head, path):
    """A 90 px face moves until a third of it is outside the frame (where full-range BlazeFace on
    the whole frame no longer finds it: from a sixth). No rescan is scheduled, and a lost face
    would trigger one: so the crops alone must follow it, each frame's box on the visible part
    of the face."""
    det = tracker(track_rescan_every=10**6)
    background = coffee_background()
    (x0, y0), (x1, y1) = path
    for i, t in enumerate(np.linspace(0, 1, 25)):
        frame = background.copy()
        truth = paste_face(frame, head, 90, x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        boxes = det(to_gray_u8(frame))
        assert found(truth, boxes), (i, truth, boxes)
    assert det.stats["full"] == 1, "the crop lost the face: a full scan had to find it again"


@pytest.mark.parametrize("sides", [(80, 40), (150, 300)], ids=["shrinks-to-40", "grows-to-300"])
def test_crops_follow_a_face_from_40_to_300_px(head, sides):
    """Once found, a face is followed by its crop alone while it shrinks to 40 px or grows to
    300 px: it fills the same share of the crop whatever its size."""
    det = tracker(track_rescan_every=10**6)
    background = coffee_background()
    for i, side in enumerate(np.geomspace(*sides, 15).round().astype(int)):
        frame = background.copy()
        truth = paste_face(frame, head, int(side), 320 + i, 240 - i)
        boxes = det(to_gray_u8(frame))
        assert found(truth, boxes), (i, truth, boxes)
    assert det.stats["full"] == 1 and det.stats["crops"] == 14


def test_tiles_find_a_face_too_small_for_the_full_range_scan(head):
    """A 44 px face: full-range BlazeFace on the whole 640x480 frame does not see it (its input
    is 192 px); the short-range tiles do, within their cycle (two scan cycles by default)."""
    det = tracker(track_rescan_every=8)
    frame = coffee_background()
    truth = paste_face(frame, head, 44, 250, 300)
    gray = to_gray_u8(frame)
    assert not found(truth, [b for b, _ in det.full.detect(gray)])
    hits = [found(truth, det(gray)) for _ in range(16)]
    assert any(hits), "the tiles never found the small face"
    assert hits[-1]


def test_the_first_frame_after_a_reset_is_scanned_whole_tiles_and_all(head):
    """An image of a folder (the pipeline resets before each) or a camera's first frame: the
    44 px face that only the tiles see is found at once, before and after a reset."""
    det = tracker()
    frame = coffee_background()
    truth = paste_face(frame, head, 44, 250, 300)
    gray = to_gray_u8(frame)
    assert found(truth, det(gray))
    det(gray)
    det.reset()
    assert found(truth, det(gray))


def test_the_kind_is_registered_with_its_own_options(tiny_bundle, astronaut_bgr):
    assert DETECTORS["blazeface-track"].options is TrackConfig
    assert all(name.startswith("track_") for name in TrackConfig.model_fields)
    config = PipelineConfig(detector={"kind": "blazeface-track", "track_rescan_every": 3})
    assert config.detector.options["blazeface-track"] == TrackConfig(track_rescan_every=3)
    with pytest.raises(EdgeferError, match="--detector blazeface-short"):
        config.detector.check_bundle(load_manifest(tiny_bundle))
    pipe = Pipeline.from_bundle(default_bundle(), config)
    (d,) = pipe(astronaut_bgr).detections
    assert d.label in pipe.labels


def test_reset_forgets_the_faces():
    det = tracker()
    det.tracks, det.tick = [((0.0, 0.0, 10.0, 10.0), "short")], 3
    det.reset()
    assert det.tracks == [] and det.tick == 0
