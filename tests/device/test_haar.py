"""The Haar cascade is the device's face detector: this fails if OpenCV cannot build it
(opencv-python-headless 5.x dropped cv2.CascadeClassifier from the main module)."""

import cv2
import pytest
from pydantic import ValidationError

from edgefer.device.detector import HaarConfig, HaarDetector, RoiSearchConfig, iou
from edgefer.errors import EdgeferError, validation_line


def test_default_frontal_face_cascade_loads():
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    assert not cascade.empty()


ASTRONAUT_FACE = (177, 66, 95, 95)


@pytest.mark.parametrize("downscale", [0.1, 0.3, 0.5])
def test_downscaled_scan_still_finds_a_face_of_min_size(astronaut_bgr, downscale):
    """A 95-px face with min_size 48: the default cascade's 24-px window at scale 0.1 would need
    faces of 240 px, so the scan runs at 24/48 = 0.5 instead."""
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    detector = HaarDetector(HaarConfig(min_size=48), scale=downscale)
    assert detector.scale == max(downscale, 0.5)
    (box,) = detector(gray)
    assert iou(box, ASTRONAUT_FACE) > 0.7


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("scale_factor", 1.0, "scale_factor: Input should be greater than 1"),
        ("scale_factor", 0.5, "scale_factor: Input should be greater than 1"),
        ("min_neighbors", -1, "min_neighbors: Input should be greater than or equal to 0"),
        ("min_size", 0, "min_size: Input should be greater than or equal to 1"),
        ("min_size", -5, "min_size: Input should be greater than or equal to 1"),
        ("max_size", 20, "max_size: Value error, expected 0 (no limit) or at least min_size (48)"),
        ("max_size", -1, "max_size: Input should be greater than or equal to 0"),
    ],
)
def test_haar_config_refuses_nonsense(field, value, expected):
    with pytest.raises(ValidationError) as err:
        HaarConfig(**{field: value})
    assert validation_line(err.value) == f"key {expected}"


@pytest.mark.parametrize(
    "field, value",
    [("downscale", 0.0), ("downscale", 1.5), ("full_every", 0), ("size_range", (1.2, 1.5))],
)
def test_roi_search_config_refuses_nonsense(field, value):
    with pytest.raises(ValidationError) as err:
        RoiSearchConfig(**{field: value})
    assert validation_line(err.value).startswith(f"key {field}: ")


@pytest.mark.parametrize("content", [b"hello, not XML", b"", b"<a/>", b"%YAML:1.0\nfoo: ["])
def test_cascade_that_is_not_xml_is_one_error_line(tmp_path, capfd, content):
    bad = tmp_path / "cascade.xml"
    bad.write_bytes(content)
    with pytest.raises(EdgeferError) as err:
        HaarDetector(HaarConfig(cascade=str(bad)))
    assert str(err.value) == (
        f"{bad}: not a Haar cascade OpenCV can load; expected a cascade "
        "XML such as OpenCV's haarcascade_frontalface_default.xml"
    )
    assert capfd.readouterr().err == ""


def test_the_floor_is_the_cascades_own_window(astronaut_bgr):
    """frontalface_alt's window is 20 px: at scale 0.5 it finds a 44-px face (22 px scanned),
    which a fixed 24-px floor would miss."""
    alt = cv2.data.haarcascades + "haarcascade_frontalface_alt.xml"
    gray = cv2.resize(
        cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY),
        None,
        fx=0.44,
        fy=0.44,
        interpolation=cv2.INTER_AREA,
    )
    detector = HaarDetector(HaarConfig(cascade=alt, min_size=40), scale=0.1)
    assert detector.window == 20 and detector.scale == 0.5
    (box,) = detector(gray)
    assert iou(box, tuple(round(v * 0.44) for v in ASTRONAUT_FACE)) > 0.6
