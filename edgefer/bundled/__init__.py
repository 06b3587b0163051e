"""The bundles that ship inside the package, so `edgefer detect` works right after `pip install`
with no other argument. Each holds an `edge` model (int8 TFLite and ONNX, the float .keras for
`edgefer demo` and re-conversion) with the BlazeFace detectors:

- `edge`, the default: the most accurate model we have (width 1.25).
- `edge-fast`: width 0.625, a quarter of the compute, for BlazeFace on every frame at 250+ FPS
  on one x86 core; a few points of top-1 fewer (its benchmark.json says how many).

`--model NAME` picks one by name anywhere a bundle directory is accepted. Regenerate a bundle
from a run directory with the command in README.md ("The bundled models"); its `benchmark.json`
is that command's own accuracy-drop report, which `edgefer models` shows."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from edgefer.errors import EdgeferError

DEFAULT = "edge"
NAMES = ("edge", "edge-fast")


def bundled_path(name: str) -> Path:
    if name not in NAMES:
        raise EdgeferError(f"bundled model '{name}': expected one of {', '.join(NAMES)}")
    return Path(str(resources.files(__name__) / name))


def default_bundle() -> Path:
    return bundled_path(DEFAULT)


def resolve_bundle(value: str | Path | None) -> Path:
    """A bundle directory, or the name of a bundled one; None is the default. A bare name (a str)
    wins over a directory of that name in the working directory (write ./edge for the directory),
    so the same command means the same model wherever it is run. A Path is always a path: Path
    normalises ./edge to edge, which must not turn into the name."""
    if value is None:
        return default_bundle()
    return bundled_path(value) if isinstance(value, str) and value in NAMES else Path(value)


def bundle_name(path: Path) -> str:
    """What to call the bundle in `path`: the bundled name whose manifest it has byte for byte
    (a deployed copy of edge-fast lives in a folder called `bundle`, and its arch is `edge`,
    like edge's), else the folder's name."""
    manifest = path / "manifest.json"
    if manifest.is_file():
        data = manifest.read_bytes()
        for name in NAMES:
            if (bundled_path(name) / "manifest.json").read_bytes() == data:
                return name
    return path.resolve().name


def bundled_results(name: str = DEFAULT) -> dict | None:
    """{format: top-1} and the split, from the bundle's recorded benchmark (None if absent)."""
    path = bundled_path(name) / "benchmark.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return {
        "split": report["split"],
        "count": report["count"],
        "accuracy": {r["format"]: r["accuracy"] for r in report["rows"]},
        "size_bytes": {r["format"]: r["size_bytes"] for r in report["rows"]},
    }
