"""The face detectors the pipeline can run, by kind: each registers itself here with its options.

A detector is a small factory plus a pydantic model of its options (Frigate's detector plugins,
in shape). `register` puts it in `DETECTORS`, and everything that offers or checks a detector
reads that table: the `[detector]` table of a config (`kind` and the options), `edgefer
detect --detector`, `Pipeline.from_bundle` and `edgefer deploy`'s check that the bundle holds
what the detector needs. Adding one touches none of them.

    @register("fake", FakeOptions)
    def fake(options: FakeOptions, context: DetectorContext) -> Detect: ...

The built-in detectors (haar, blazeface, blazeface-track) register when `edgefer.device.pipeline_config` is
imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.device.manifest import Manifest, Strict
from edgefer.errors import EdgeferError

# A detector: a gray uint8 frame in, face boxes (x, y, w, h in frame pixels) out. One that keeps
# state between frames (the ROI search) also has reset(), which the pipeline calls after a frame
# that failed.
Detect = Callable[[np.ndarray], list[tuple[int, int, int, int]]]


class DetectorOptions(Strict):
    """A detector's own options, as keys of the `[detector]` table: unknown keys are refused."""

    def changed(self) -> list[str]:
        """The options set to something other than their default: under `kind = "auto"` they
        say which detector the user means (`min_size = 60` is Haar's)."""
        default = type(self)()
        return [k for k in type(self).model_fields if getattr(self, k) != getattr(default, k)]


@dataclass(frozen=True)
class DetectorContext:
    """What a detector may need besides its options: a model file of the bundle (verified
    against the manifest) and the interpreter threads the pipeline runs with."""

    bundle_dir: Path
    manifest: Manifest
    threads: int = 1


def needs_nothing(options: DetectorOptions, manifest: Manifest) -> None:
    """A detector that brings its own model (OpenCV's cascades) needs nothing of the bundle."""


@dataclass(frozen=True)
class DetectorKind:
    kind: str
    options: type[DetectorOptions]
    build: Callable[[DetectorOptions, DetectorContext], Detect]
    # Raises EdgeferError where the bundle lacks what the detector loads: run before any file is
    # read, so that `edgefer deploy` refuses a config the bundle cannot serve.
    check_bundle: Callable[[DetectorOptions, Manifest], None] = needs_nothing


DETECTORS: dict[str, DetectorKind] = {}


def register(kind: str, options: type[DetectorOptions], check_bundle=needs_nothing):
    """Decorator: `build(options, context)` makes the detector called `kind`. The options of
    every detector share the flat `[detector]` table, so two detectors may not claim one key."""

    def deco(build):
        if kind in DETECTORS:
            raise EdgeferError(f"detector '{kind}' is registered already")
        for other in DETECTORS.values():
            shared = (set(options.model_fields) & set(other.options.model_fields)) - {"kind"}
            if shared:
                raise EdgeferError(
                    f"detector '{kind}': option {', '.join(sorted(shared))} is "
                    f"detector '{other.kind}''s already"
                )
        if "kind" in options.model_fields:
            raise EdgeferError(f"detector '{kind}': 'kind' is the [detector] table's own key")
        DETECTORS[kind] = DetectorKind(kind, options, build, check_bundle)
        return build

    return deco
