"""`edgefer detect` / `bench` on sources that fail part-way, and what `--save` accepts."""

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgefer.cli import device_cmd
from edgefer.device import saver
from edgefer.device.backends import PREFERENCES
from tests.cli_helpers import run
from tests.device.test_sources import damage_avi, write_avi


@pytest.mark.parametrize("command", ["detect", "bench"])
def test_video_that_fails_part_way_exits_non_zero(tiny_bundle, tmp_path, command):
    video = damage_avi(write_avi(tmp_path / "v.avi"), first_bad=10)
    res = run(command, "--model", tiny_bundle, "--source", video)
    assert res.exit_code == 2
    assert (
        res.stderr
        == f"error: {video}: cannot read frame #10 of 20; the video is corrupt or truncated\n"
    )
    if command == "detect":
        assert res.stdout.count("v.avi#") == 10


@pytest.mark.parametrize(
    "save, source, expected",
    [
        (
            "o.txt",
            "image",
            (
                r"--save .*o\.txt: cannot write '\.txt'; expected an image \(\.png, "
                r"\.jpg, \.jpeg, \.bmp\) or a video \(\.mp4, \.avi\)"
            ),
        ),
        ("o.gif", "image", "cannot write '.gif'"),
        (
            "o.png",
            "folder",
            (
                r"a folder has many frames and one image would keep only the last; "
                r"save to a video \(\.mp4, \.avi\)"
            ),
        ),
        ("o.jpg", "video", "a video has many frames"),
    ],
)
def test_save_target_refused_up_front(tiny_bundle, astronaut_bgr, tmp_path, save, source, expected):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), astronaut_bgr)
    spec = {"image": src / "a.png", "folder": src, "video": write_avi(src / "v.avi")}[source]
    out = tmp_path / "out"
    res = run("detect", "--model", tiny_bundle, "--source", spec, "--save", out / save)
    assert res.exit_code == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and re.search(expected, res.stderr), res.stderr
    assert not out.exists()  # nothing written, not even the folder


def test_save_keeps_the_source_frame_rate(tiny_bundle, tmp_path):
    video = write_avi(tmp_path / "v.avi", frames=6, fps=12.0)
    res = run("detect", "--model", tiny_bundle, "--source", video, "--save", tmp_path / "o.mp4")
    assert res.exit_code == 0, res.output
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def test_folder_of_mixed_sizes_saves_every_frame_letterboxed(tiny_bundle, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((48, 64, 3), 200, np.uint8))
    cv2.imwrite(
        str(folder / "b.png"), np.full((96, 96, 3), 200, np.uint8)
    )  # square: bars at the sides
    res = run("detect", "--model", tiny_bundle, "--source", folder, "--save", tmp_path / "o.avi")
    assert res.exit_code == 0, res.output
    cap = cv2.VideoCapture(str(tmp_path / "o.avi"))
    frames = [cap.read()[1] for _ in range(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))]
    assert len(frames) == 2 and all(f.shape == (48, 64, 3) for f in frames)
    second = frames[1][:, :, 0].astype(int)
    assert second[:, :6].max() < 30 and second[:, -6:].max() < 30  # black bars, 8 px each
    assert abs(second[:, 10:54] - 200).max() < 30  # the image, not stretched to 64 px


def test_video_writer_that_cannot_open_leaves_nothing(
    tiny_bundle, face_video, tmp_path, monkeypatch
):
    monkeypatch.setitem(saver.VIDEO_TARGETS, ".mp4", "ZZZZ")  # a codec no build has
    out = tmp_path / "out"
    res = run(
        "detect",
        "--model",
        tiny_bundle,
        "--source",
        face_video,
        "--frames",
        2,
        "--save",
        out / "o.mp4",
    )
    assert res.exit_code == 2 and "o.mp4: OpenCV cannot write ZZZZ video here" in res.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--scale-factor", 1, "Input should be greater than 1"),
        ("--scale-factor", 0.9, "Input should be greater than 1"),
        ("--min-neighbors", -1, "Input should be greater than or equal to 0"),
        ("--min-size", 0, "Input should be greater than or equal to 1"),
        (
            "--min-size",
            "x",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ("--max-size", -1, "Input should be greater than or equal to 0"),
        ("--downscale", 0, "Input should be greater than 0"),
        ("--threads", 65, "Input should be less than or equal to 64"),
    ],
)
def test_detector_options_out_of_range(tiny_bundle, face_video, option, value, expected):
    """Checked by the PipelineConfig the flags build, as the daemon's config is: one line
    naming the flag."""
    res = run("detect", "--model", tiny_bundle, "--source", face_video, option, value)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == f"error: option {option}: {expected}\n"


def test_cascade_that_is_not_xml(tiny_bundle, face_video, tmp_path):
    cascade = tmp_path / "c.xml"
    cascade.write_text("not a cascade")
    res = run("detect", "--model", tiny_bundle, "--source", face_video, "--cascade", cascade)
    assert res.exit_code == 2
    assert (
        res.stderr == f"error: {cascade}: not a Haar cascade OpenCV can load; expected a cascade "
        "XML such as OpenCV's haarcascade_frontalface_default.xml\n"
    )


def test_backends_offered_are_the_device_backends(tiny_bundle, face_video):
    (backend,) = [p for p in device_cmd.detect.params if p.name == "backend"]
    assert backend.metavar == "|".join(PREFERENCES)
    res = run("detect", "--model", tiny_bundle, "--source", face_video, "--backend", "tpu")
    *most, last = PREFERENCES
    expected = ", ".join(f"'{b}'" for b in most) + f" or '{last}'"
    assert res.stderr == f"error: option --backend: Input should be {expected}\n"


def test_device_commands_import_without_tensorflow():
    code = (
        "import sys\nfor m in ('tensorflow', 'keras'): sys.modules[m] = None\n"
        "import edgefer.cli.device_cmd"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_folder_of_images_is_scanned_whole_each_image(tmp_path):
    """Unrelated images with the default detector (blazeface-track on the bundled model): a face
    that the previous image did not have is found in the next one at once, not at the tracker's
    next rescan; and no expression is carried over from the image before."""
    import json

    from edgefer.samples import astronaut_head, coffee_background, paste_face

    head, folder = astronaut_head(), tmp_path / "photos"
    folder.mkdir()
    truths = []
    for i in range(3):
        frame = coffee_background()
        boxes = [paste_face(frame, head, 110, 170, 240)]
        if i:
            boxes.append(paste_face(frame, head, 100, 470, 220, mirror=True))
        cv2.imwrite(str(folder / f"{i}.png"), frame)
        truths.append(boxes)
    res = run("detect", "--source", folder, "--json", "--expression-every", "5")
    assert res.exit_code == 0, res.output
    for line, truth in zip(res.output.splitlines(), truths):
        found = [tuple(f["box"]) for f in json.loads(line)["faces"]]
        assert len(found) == len(truth), (line, truth)
        assert json.loads(line)["ms"]["inference"] > 0  # every image's faces are read


def test_each_image_of_a_folder_gets_what_it_gets_alone(tmp_path):
    """A face half out of the frame at the left edge, a little further out in each image: with
    the default detector, what a folder finds in each image is what that image alone gives, not
    what following the previous image's face finds (results must not depend on file order)."""
    import json

    from edgefer.samples import astronaut_head, coffee_background, paste_face

    head, folder = astronaut_head(), tmp_path / "edge"
    folder.mkdir()
    for name, cx in (("b", 20), ("c", 15), ("d", 10)):
        frame = coffee_background()
        paste_face(frame, head, 90, cx, 240)
        cv2.imwrite(str(folder / f"{name}.png"), frame)

    def faces(source) -> list[list]:
        res = run("detect", "--source", source, "--json")
        assert res.exit_code == 0, res.output
        return [[f["box"] for f in json.loads(line)["faces"]] for line in res.output.splitlines()]

    alone = [faces(p)[0] for p in sorted(folder.iterdir())]
    assert faces(folder) == alone
