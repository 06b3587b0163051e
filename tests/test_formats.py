"""The format table (edgefer.device.formats): one row per format, and everything else reads it."""

import inspect
import json
import shutil
import subprocess
import sys
import textwrap

from edgefer.device import formats
from edgefer.device.formats import BACKENDS, TABLE


def test_the_consumers_read_the_table():
    from edgefer.benchmark import FLOAT_REFERENCES
    from edgefer.cli.convert_cmd import convert
    from edgefer.converters.bundle import DEFAULT_FORMATS, FILES, NEEDS_CALIBRATION
    from edgefer.demo import FORMATS as DEMO_FORMATS
    from edgefer.device.backends import PREFERENCES
    from edgefer.device.latency import TRIED
    from edgefer.device.manifest import FORMATS

    assert FORMATS == tuple(f.name for f in TABLE)
    assert FILES == {f.name: f.file for f in TABLE}
    assert DEFAULT_FORMATS == tuple(f.name for f in TABLE if f.runtime != "keras")
    (fmt_option,) = [p for p in convert.params if p.name == "formats"]
    assert fmt_option.default == ",".join(DEFAULT_FORMATS)
    assert NEEDS_CALIBRATION == {"tflite-int8", "onnx-int8", "edgetpu"}
    # What the table says today, as it was said before there was a table.
    assert PREFERENCES == {
        "cpu": ("tflite-int8", "tflite-fp32", "tflite-fp16", "tflite-dynamic"),
        "edgetpu": ("edgetpu",),
        "gpu": ("tflite-fp16", "tflite-fp32"),
        "external": ("tflite-int8", "tflite-fp32"),
        "onnx": ("onnx-int8", "onnx"),
    }
    assert DEMO_FORMATS == ("tflite-int8", "onnx-int8")
    assert FLOAT_REFERENCES == ("keras", "tflite-fp32", "onnx")
    assert TRIED == ("cpu", "edgetpu", "gpu", "onnx")


def test_every_row_can_be_made_and_run():
    from edgefer.converters.bundle import MAKERS

    names = [f.name for f in TABLE]
    assert len(set(names)) == len(names) and len({f.file for f in TABLE}) == len(TABLE)
    for i, f in enumerate(TABLE):
        if f.made_from:  # from an earlier row, so the table reads in the order files are made
            assert f.made_from in names[:i], f.name
        if f.keeps_source:
            assert f.made_from, f.name
        if f.runtime != "keras":
            assert (f.runtime, f.made_from) in MAKERS, f.name
            assert f.backends and set(f.backends) <= set(BACKENDS), f.name
    for backend, best_first in formats.preferences().items():
        assert best_first, f"no format runs on {backend}"


def test_a_new_row_is_all_it_takes(tiny_bundle, tmp_path):
    """Add a row to the table (here a second name for the fp32 TFLite model): the manifest
    accepts it, the CPU backend opens it, `convert` offers it and `benchmark` scores it."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    fp32 = next(a for a in manifest["artifacts"] if a["format"] == "tflite-fp32")
    manifest["artifacts"].append({**fp32, "format": "tflite-new"})
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    source = inspect.getsource(formats)
    row = (
        'TABLE = (\n    Format("tflite-new", "model_new.tflite", "tflite", '
        'backends={"cpu": 9, "gpu": 9}),\n'
    )
    assert "TABLE = (\n" in source
    patched = source.replace("TABLE = (\n", row, 1)
    code = textwrap.dedent(
        f"""
        import numpy as np
        import edgefer.device.formats as formats

        # The table with one more row, before any module that reads it is imported.
        exec(compile({patched!r}, formats.__file__, "exec"),
             formats.__dict__)

        from edgefer.benchmark import score_formats
        from edgefer.cli.convert_cmd import convert
        from edgefer.converters.bundle import DEFAULT_FORMATS, FILES
        from edgefer.device.backends import PREFERENCES, open_runtime
        from edgefer.device.manifest import FORMATS, load_manifest

        assert "tflite-new" in FORMATS and FILES["tflite-new"] == "model_new.tflite"
        assert "tflite-new" in DEFAULT_FORMATS
        assert "tflite-new" in next(p for p in convert.params if p.name == "formats").default
        assert PREFERENCES["cpu"][-1] == PREFERENCES["gpu"][-1] == "tflite-new", PREFERENCES
        bundle = {str(bundle)!r}
        assert load_manifest(bundle).artifact("tflite-new").file == "model_fp32.tflite"
        _, _, art = open_runtime(bundle, "cpu", fmt="tflite-new")
        assert art.format == "tflite-new"
        images = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
        result = score_formats(bundle, images, None, 1, 2, ["tflite-fp32", "tflite-new"],
                               log=lambda m: None)
        rows = {{r["format"]: r for r in result["rows"]}}
        assert set(rows) == {{"tflite-fp32", "tflite-new"}} and result["reference"] == "tflite-fp32"
        assert rows["tflite-new"]["agreement"] == 1.0
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
