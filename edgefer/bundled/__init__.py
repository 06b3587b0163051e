"""The bundle that ships inside the package: the `edge` model (int8 TFLite and ONNX, the float
.keras for `edgefer demo` and re-conversion) with the BlazeFace detectors, so `edgefer detect`
works right after `pip install` with no other argument.

Regenerate it from a run directory with the one command in README.md ("The bundled model"); its
`benchmark.json` is that command's own accuracy-drop report, which `edgefer models` shows."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def default_bundle() -> Path:
    return Path(str(resources.files(__name__) / "edge"))


def bundled_results() -> dict | None:
    """{format: top-1} and the split, from the bundle's recorded benchmark (None if absent)."""
    path = default_bundle() / "benchmark.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return {
        "split": report["split"],
        "count": report["count"],
        "accuracy": {r["format"]: r["accuracy"] for r in report["rows"]},
        "size_bytes": {r["format"]: r["size_bytes"] for r in report["rows"]},
    }
