"""The Haar cascade is the device's face detector: this fails if OpenCV cannot build it
(opencv-python-headless 5.x dropped cv2.CascadeClassifier from the main module)."""

import cv2


def test_default_frontal_face_cascade_loads():
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    assert not cascade.empty()
