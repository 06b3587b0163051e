import json
import shutil

import numpy as np
import pytest

from edgefer.bundled import default_bundle
from edgefer.device.blazeface import (
    VARIANTS,
    BlazeFaceDetector,
    anchors,
    decode,
    haar_framing,
    weighted_nms,
)
from edgefer.device.detector import HaarDetector, iou
from edgefer.device.pipeline import Pipeline
from edgefer.device.pipeline_config import PipelineConfig
from edgefer.errors import EdgeferError
from edgefer.imaging import to_gray_u8


def blazeface(variant: str) -> PipelineConfig:
    return PipelineConfig(detector={"kind": "blazeface", "blazeface_range": variant})


@pytest.mark.parametrize("variant, count", [("short", 896), ("full", 2304)])
def test_anchor_layout_matches_the_models(variant, count):
    a = anchors(VARIANTS[variant])
    assert a.shape == (count, 2) and a.min() > 0 and a.max() < 1
    # the first anchors sit in the top-left cell, one per anchor of that cell
    per_cell = VARIANTS[variant].layers[0][1]
    stride = VARIANTS[variant].layers[0][0]
    np.testing.assert_allclose(a[:per_cell], stride / 2 / VARIANTS[variant].size)


def test_decode_places_a_box_relative_to_its_anchor():
    xy = np.array([[0.25, 0.5], [0.75, 0.75]], np.float32)
    reg = np.zeros((2, 16), np.float32)
    reg[1, :4] = [12.8, -12.8, 32, 64]  # +0.1, -0.1, w 0.25, h 0.5 of a 128 input
    logits = np.array([-3.0, 3.0])  # only the second anchor is a face
    boxes, scores = decode(reg, logits, xy, 128, threshold=0.5)
    np.testing.assert_allclose(boxes, [[0.725, 0.4, 0.975, 0.9]], atol=1e-6)
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-3.0))], rtol=1e-6)


def test_weighted_nms_blends_overlaps_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [3, 3, 4, 4]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    out = weighted_nms(boxes, scores, 0.3)
    assert len(out) == 2
    (first, s1), (second, s2) = out
    np.testing.assert_allclose(first, [0.025, 0, 1.025, 1], atol=1e-6)  # 0.9/0.3-weighted mean
    assert (s1, s2) == pytest.approx((0.9, 0.8))
    np.testing.assert_allclose(second, [3, 3, 4, 4])


def test_haar_framing_is_a_square_about_the_shifted_centre():
    assert haar_framing((100, 100, 40, 60), {"scale": 1.5, "shift_y": -0.1}) == (75, 79, 90, 90)


@pytest.mark.parametrize("variant", ["short", "full"])
def test_blazeface_finds_the_astronaut_where_haar_does(astronaut_bgr, variant):
    pipe = Pipeline.from_bundle(default_bundle(), blazeface(variant))
    result = pipe(astronaut_bgr)
    (haar_box,) = HaarDetector()(to_gray_u8(astronaut_bgr))
    (d,) = result.detections
    assert iou(d.box, haar_box) > 0.6, (d.box, haar_box)
    assert d.label in pipe.labels


def test_the_model_input_is_the_frame_letterboxed_rgb_in_minus_one_one():
    """What the model is fed, against a plain reference: RGB order, [-1, 1], the frame top-left
    and black (-1) padding; a smaller frame after a larger one leaves no stale pixels."""
    det = BlazeFaceDetector(default_bundle() / "blazeface_short.tflite")
    fed = lambda: det.interpreter.get_tensor(det.input_index)[0]
    wide = np.zeros((64, 128, 3), np.uint8)
    wide[..., 0], wide[..., 1], wide[..., 2] = 0, 51, 255  # B, G, R
    det.detect(wide)
    x = fed()
    np.testing.assert_allclose(x[:64, :, 0], 1.0)  # red first
    np.testing.assert_allclose(x[:64, :, 1], 51 / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(x[:64, :, 2], -1.0)
    np.testing.assert_allclose(x[64:], -1.0)
    tall = np.full((128, 32), 255, np.uint8)  # gray: three equal channels
    det.detect(tall)
    x = fed()
    np.testing.assert_allclose(x[:, :32], 1.0)
    np.testing.assert_allclose(x[:, 32:], -1.0)


def test_no_face_in_a_blank_frame():
    pipe = Pipeline.from_bundle(default_bundle(), blazeface("short"))
    assert pipe(np.full((480, 640, 3), 128, np.uint8)).detections == []


def test_a_bundle_without_the_detector_says_how_to_add_it(tiny_bundle):
    with pytest.raises(EdgeferError, match="--detector blazeface-short"):
        Pipeline.from_bundle(tiny_bundle, blazeface("short"))


def test_a_swapped_detector_file_is_refused(tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(default_bundle(), bundle)
    shutil.copy(bundle / "blazeface_full.tflite", bundle / "blazeface_short.tflite")
    with pytest.raises(EdgeferError, match="sha256 differs"):
        Pipeline.from_bundle(bundle, blazeface("short"))


def test_the_bundled_manifest_lists_both_detectors():
    m = json.loads((default_bundle() / "manifest.json").read_text())
    assert {d["variant"] for d in m["detectors"]} == {"short", "full"}
    assert all("Apache-2.0" in d["source"] for d in m["detectors"])


@pytest.mark.parametrize("side", [128, 64])
def test_a_smaller_input_finds_a_face_filling_half_of_it_where_the_full_size_does(side):
    """The short-range graph at 64 px (what blazeface-track follows faces with): a face that
    fills half the input is found in the same place as at the model's own 128 px."""
    from edgefer.samples import astronaut_head

    head = to_gray_u8(astronaut_head())  # 190 px, the face's 95 px centred
    det = BlazeFaceDetector(default_bundle() / "blazeface_short.tflite", input_size=side)
    assert det.variant.size == side and len(det.anchor_xy) == 896 * side**2 // 128**2
    (box, score), *rest = det.detect(head)
    assert not rest and score > 0.8
    assert iou(box, (47, 47, 95, 95)) > 0.6, box


def test_an_input_size_off_the_models_grid_is_refused():
    with pytest.raises(EdgeferError, match="input_size 72: expected a positive multiple of 16"):
        BlazeFaceDetector(default_bundle() / "blazeface_short.tflite", input_size=72)
