import json

import cv2

from tests.cli_helpers import run


def test_detect_image_json_and_save(tiny_bundle, astronaut_bgr, tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), astronaut_bgr)
    res = run(
        "detect", "--model", tiny_bundle, "--source", img, "--json", "--save", tmp_path / "o.png"
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    assert len(out["faces"]) == 1 and out["faces"][0]["label"] in out["faces"][0]["scores"]
    saved = cv2.imread(str(tmp_path / "o.png"))
    assert saved.shape == astronaut_bgr.shape and not (saved == astronaut_bgr).all()


def test_detect_video_saves_mp4_only_when_asked(tiny_bundle, face_video, tmp_path):
    res = run("detect", "--model", tiny_bundle, "--source", face_video, "--frames", 10)
    assert res.exit_code == 0 and res.stdout.count("face.mp4#") == 10
    assert list(tmp_path.iterdir()) == []
    res = run(
        "detect",
        "--model",
        tiny_bundle,
        "--source",
        face_video,
        "--frames",
        10,
        "--save",
        tmp_path / "o.mp4",
    )
    assert res.exit_code == 0
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10


def test_bench_reports_stages_and_backends(tiny_bundle, face_video):
    res = run("bench", "--model", tiny_bundle, "--source", face_video, "--frames", 20, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["frames"] == 20 and out["fps"] > 0
    assert set(out["stages"]) == {
        "decode",
        "detect",
        "preprocess",
        "inference",
        "postprocess",
        "total",
    }
    assert {"p50", "p95", "p99", "max"} <= set(out["stages"]["total"])
    models = {m["backend"]: m for m in out["models"]}
    assert models["cpu"]["format"] == "tflite-int8" and "not available" in models["edgetpu"]["note"]
    table = run("bench", "--model", tiny_bundle, "--source", face_video, "--frames", 5)
    assert "FPS end to end" in table.output and "model only (batch 1)" in table.output


def test_detect_bad_model_and_delegate(tmp_path, tiny_bundle, face_video):
    res = run("detect", "--model", tmp_path, "--source", face_video)
    assert res.exit_code == 2 and "manifest.json: not found" in res.output
    res = run("detect", "--model", tiny_bundle, "--source", face_video, "--backend", "external")
    assert res.exit_code == 2 and res.stderr == (
        "error: option --delegate-library: backend external needs the delegate library's path\n"
    )
    res = run(
        "detect",
        "--model",
        tiny_bundle,
        "--source",
        face_video,
        "--frames",
        2,
        "--backend",
        "gpu",
        "--delegate-library",
        "/no/lib.so",
        "--fallback",
        "cpu",
    )
    assert res.exit_code == 0 and res.stdout.count("face.mp4#") == 2


def test_a_bundled_name_is_not_shadowed_by_a_file_and_a_file_is_refused(
    tmp_path, astronaut_bgr, monkeypatch
):
    from edgefer.bundled import bundled_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "edge-fast").write_text("not a bundle")
    cv2.imwrite("a.png", astronaut_bgr)
    faces = []
    for model in ("edge-fast", bundled_path("edge-fast")):
        res = run("detect", "--model", model, "--source", "a.png", "--json")
        assert res.exit_code == 0, res.output
        faces.append(json.loads(res.stdout.splitlines()[-1])["faces"])
    assert faces[0] == faces[1]
    res = run("detect", "--model", "./edge-fast", "--source", "a.png")
    assert res.exit_code == 2
    assert (
        "./edge-fast: a file; expected a bundle directory or one of edge, edge-fast" in res.output
    )
