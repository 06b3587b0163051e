"""The detector registry and the PipelineConfig built on it: a detector registered here (a fake)
is valid in a config file and on the command line, and runs, with no change to either; the
daemon's config carries the detector's and the delegate's options into the pipeline it builds."""

import json
from pathlib import Path

import cv2
import pytest
from pydantic import Field

import edgefer.device.daemon
from edgefer.device.daemon.config import DaemonConfig, load_config
from edgefer.device.daemon.loop import build_pipeline
from edgefer.device.delegates import DelegateSpec
from edgefer.device.detector import HaarConfig, HaarDetector, RoiSearchDetector
from edgefer.device.detectors import DETECTORS, DetectorOptions, register
from edgefer.device.manifest import load_manifest
from edgefer.device.pipeline import Pipeline
from edgefer.device.pipeline_config import PipelineConfig
from edgefer.errors import EdgeferError
from tests.cli_helpers import run

EXAMPLE = Path(edgefer.device.daemon.__file__).parent / "edgefer.example.toml"


class FakeOptions(DetectorOptions):
    fake_side: int = Field(40, ge=1)


def fake_needs(options: FakeOptions, manifest) -> None:
    if options.fake_side > 100:
        raise EdgeferError("fake: this bundle has no model for faces over 100 px")


@pytest.fixture
def fake_detector():
    """A detector that finds one square face at (10, 10), registered as the real ones are."""

    @register("fake", FakeOptions, check_bundle=fake_needs)
    def fake(options: FakeOptions, context):
        """One fixed face."""
        return lambda gray: [(10, 10, options.fake_side, options.fake_side)]

    yield
    DETECTORS.pop("fake")


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "edgefer.toml"
    path.write_text(text)
    return path


def test_a_registered_detector_is_valid_in_a_config_and_runs(
    fake_detector, tmp_path, tiny_bundle, astronaut_bgr
):
    path = write(tmp_path, f'bundle = "{tiny_bundle}"\n[detector]\nkind = "fake"\nfake_side = 60\n')
    config = load_config(path, environ={})
    assert config.detector.options["fake"] == FakeOptions(fake_side=60)
    (d,) = build_pipeline(config)(astronaut_bgr).detections
    assert d.box == (10, 10, 60, 60)
    bad = write(tmp_path, '[detector]\nkind = "fake"\nfake_side = 0\n')
    with pytest.raises(EdgeferError) as err:
        load_config(bad, environ={})
    assert (
        str(err.value)
        == f"{bad}: key detector.fake_side: Input should be greater than or equal to 1"
    )


def test_a_registered_detector_is_offered_by_the_command_line(
    fake_detector, tmp_path, tiny_bundle, astronaut_bgr
):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), astronaut_bgr)
    res = run("detect", "--model", tiny_bundle, "--source", image, "--detector", "fake", "--json")
    assert res.exit_code == 0, res.output
    (face,) = json.loads(res.stdout)["faces"]
    assert face["box"] == [10, 10, 40, 40]


def test_a_detectors_bundle_check_is_what_deploy_runs(fake_detector, tiny_bundle):
    manifest = load_manifest(tiny_bundle)
    PipelineConfig(detector={"kind": "fake"}).detector.check_bundle(manifest)
    with pytest.raises(EdgeferError, match="no model for faces over 100 px"):
        PipelineConfig(detector={"kind": "fake", "fake_side": 200}).detector.check_bundle(manifest)
    with pytest.raises(EdgeferError, match="bundle has no BlazeFace full detector"):
        PipelineConfig(
            detector={"kind": "blazeface", "blazeface_range": "full"}
        ).detector.check_bundle(manifest)


@pytest.mark.parametrize("registered", [False, True], ids=["built-in", "with-fake"])
def test_an_unknown_kind_is_one_line_naming_the_key_and_the_registered_kinds(
    request, tmp_path, tiny_bundle, face_video, registered
):
    if registered:
        request.getfixturevalue("fake_detector")
    kinds = (
        "'auto', 'haar', 'blazeface', 'blazeface-track' or 'fake'"
        if registered
        else "'auto', 'haar', 'blazeface' or 'blazeface-track'"
    )
    path = write(tmp_path, '[detector]\nkind = "yolo"\n')
    with pytest.raises(EdgeferError) as err:
        load_config(path, environ={})
    assert str(err.value) == f"{path}: key detector.kind: Input should be {kinds}"
    res = run("detect", "--model", tiny_bundle, "--source", face_video, "--detector", "yolo")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == f"error: option --detector: Input should be {kinds}\n"


def test_an_option_no_registered_detector_has_is_refused(tmp_path):
    path = write(tmp_path, "[detector]\nfake_side = 60\n")
    with pytest.raises(
        EdgeferError, match="key detector.fake_side: Extra inputs are not permitted"
    ):
        load_config(path, environ={})


def test_two_detectors_cannot_claim_one_key():
    class Clashing(DetectorOptions):
        threshold: float = 0.5

    with pytest.raises(EdgeferError, match="option threshold is detector 'blazeface''s already"):
        register("clashing", Clashing)(lambda options, context: None)
    assert "clashing" not in DETECTORS


def test_the_daemon_honours_a_haar_option_from_its_config(tmp_path, tiny_bundle, astronaut_bgr):
    """The astronaut's face is 95 px: found with the defaults, not with min_size = 120."""
    head = f'bundle = "{tiny_bundle}"\n[detector]\n'
    found = build_pipeline(load_config(write(tmp_path, head), environ={}))
    assert len(found(astronaut_bgr).detections) == 1
    config = load_config(write(tmp_path, head + "min_size = 120\n"), environ={})
    pipe = build_pipeline(config)
    assert isinstance(pipe.detector, RoiSearchDetector)
    assert pipe.detector.full.config.min_size == 120
    assert pipe(astronaut_bgr).detections == []
    full = load_config(write(tmp_path, head + "[detector.roi_search]\nenabled = false\n"), {})
    assert type(build_pipeline(full).detector) is HaarDetector
    # A camera's own [detector] table over the shared one.
    two = load_config(
        write(
            tmp_path,
            head + "min_size = 120\n[cameras.a]\n[cameras.b]\nsource = { uri = '1' }\n"
            "[cameras.b.detector]\nmin_size = 48\n",
        ),
        environ={},
    )
    assert build_pipeline(two, "a")(astronaut_bgr).detections == []
    assert len(build_pipeline(two, "b")(astronaut_bgr).detections) == 1


def test_the_daemon_honours_delegate_options_from_its_config(tmp_path, tiny_bundle):
    path = write(
        tmp_path,
        f'bundle = "{tiny_bundle}"\nbackend = "gpu"\nfallback = "cpu"\n'
        '[delegate]\nlibrary = "/nowhere/libgpu.so"\noptions = { device = "usb:0" }\n',
    )
    config = load_config(path, environ={})
    assert config.delegate_spec() == DelegateSpec("gpu", "/nowhere/libgpu.so", {"device": "usb:0"})
    with pytest.warns(UserWarning, match="gpu delegate: cannot load /nowhere/libgpu.so"):
        build_pipeline(config)
    env = {"EDGEFER_BACKEND": "external"}
    with pytest.raises(EdgeferError, match="key delegate.library: backend external needs"):
        load_config(None, environ=env)
    assert load_config(None, environ=env | {"EDGEFER_DELEGATE__LIBRARY": "/x.so"}).backend == (
        "external"
    )


def test_old_configs_load_unchanged(tmp_path):
    """The keys the daemon had before the pipeline options joined it, read as they were."""
    example = load_config(EXAMPLE, environ={})
    assert (example.backend, example.threads, example.margin) == ("cpu", 1, 0.0)
    assert example.detector.kind == "auto" and example.detector.options["haar"] == HaarConfig()
    old = write(
        tmp_path,
        'backend = "onnx"\nthreads = 2\nmargin = 0.1\n'
        '[detector]\nkind = "blazeface"\nblazeface_range = "full"\nthreshold = 0.6\n'
        '[tracking]\nsmoothing = "vote"\n',
    )
    config = load_config(old, environ={})
    assert (config.backend, config.threads, config.margin) == ("onnx", 2, 0.1)
    assert config.detector.kind == "blazeface"
    assert config.detector.options["blazeface"].model_dump() == {
        "blazeface_range": "full",
        "threshold": 0.6,
    }
    assert config.tracking.smoothing == "vote"
    # --print-config's output is a config that reads back the same.
    printed = json.loads(json.dumps(config.masked()))
    assert printed["detector"]["threshold"] == 0.6 and "options" not in printed["detector"]
    assert DaemonConfig.model_validate(printed) == config


def test_flags_and_the_config_make_the_same_pipeline_config(tiny_bundle):
    """`--min-size 60 --naive` is `[detector] kind = "haar"`, `min_size = 60`, the ROI search
    off."""
    from edgefer.cli.device_cmd import detect, pipeline_config

    flags = {p.name: p.default for p in detect.params if p.name not in NOT_PIPELINE}
    flags |= {"min_size": "60", "naive": True}
    got = pipeline_config(flags, video=True)
    assert got == PipelineConfig(
        detector={"kind": "haar", "min_size": 60, "roi_search": {"enabled": False}}
    )
    assert type(Pipeline.from_bundle(tiny_bundle, got).detector) is HaarDetector


NOT_PIPELINE = {"bundle", "source", "frames", "save", "as_json"}


def test_auto_runs_blazeface_track_where_the_bundle_has_blazeface_and_haar_where_not(tiny_bundle):
    """The default kind: the bundled model carries both BlazeFace models, the tiny test bundle
    none; /status names the detector that runs, not "auto"."""
    from edgefer.bundled import default_bundle
    from edgefer.device.blazeface_track import BlazeFaceTracker

    assert PipelineConfig().detector.kind == "auto"
    with_models = Pipeline.from_bundle(default_bundle())
    assert type(with_models.detector) is BlazeFaceTracker
    assert with_models.detector_kind == "blazeface-track"
    without = Pipeline.from_bundle(tiny_bundle)
    assert type(without.detector) is RoiSearchDetector and without.detector_kind == "haar"
    # An explicit kind is kept whatever the bundle has.
    haar = Pipeline.from_bundle(default_bundle(), PipelineConfig(detector={"kind": "haar"}))
    assert type(haar.detector) is RoiSearchDetector and haar.detector_kind == "haar"


@pytest.mark.parametrize(
    "options, kind",
    [
        ({}, "auto"),
        ({"roi_search": {"enabled": False}}, "auto"),  # images and --naive: not a choice
        ({"min_size": 60}, "haar"),
        ({"roi_search": {"full_every": 5}}, "haar"),
        ({"min_size": 48}, "auto"),  # the default value chooses nothing
        ({"threshold": 0.6}, "blazeface"),
        ({"track_input": 96}, "blazeface-track"),
    ],
)
def test_auto_becomes_the_detector_whose_options_are_set(options, kind):
    """A config written when Haar was the default (`min_size = 60`, no kind) keeps Haar; a Haar
    flag is never silently ignored by the tracker."""
    assert PipelineConfig(detector=options).detector.kind == kind


def test_auto_with_options_of_two_detectors_is_one_line_naming_them(tmp_path):
    path = write(tmp_path, "[detector]\nmin_size = 60\nthreshold = 0.6\n")
    with pytest.raises(EdgeferError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: key detector.kind: 'auto', but options of more than one detector are set "
        "(haar: min_size; blazeface: threshold); set kind to the detector that runs"
    )


def test_a_haar_flag_runs_haar_under_the_default_kind(face_video):
    """The bundled model has BlazeFace, so `auto` alone would track with it; --min-size is
    Haar's, so Haar runs, and no face of the video is 400 px."""
    from edgefer.bundled import default_bundle

    res = run("detect", "--source", face_video, "--frames", "3", "--min-size", "400")
    assert res.exit_code == 0 and res.output.count("no face") == 3, res.output
    pipe = Pipeline.from_bundle(default_bundle(), PipelineConfig(detector={"min_size": 400}))
    assert type(pipe.detector) is RoiSearchDetector and pipe.detector_kind == "haar"
