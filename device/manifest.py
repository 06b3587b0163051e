"""`manifest.json`: how to feed every model of a bundle. The device feeds a model only from its
manifest, never from guesses, so it is validated on load with one clear line per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgefer.device.formats import NAMES
from edgefer.errors import EdgeferError, validation_line

FORMAT = "edgefer-bundle/1"
FORMATS = NAMES  # every format a bundle may list: the rows of device/formats.py


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantization(Strict):
    scale: float = Field(gt=0)
    zero_point: int


class TensorSpec(Strict):
    name: str
    shape: list[int]  # -1 = any size (a dynamic batch)
    dtype: Literal["float32", "int8", "uint8"]
    quantization: Quantization | None = None


class BundleFile(Strict):
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @field_validator("file")
    @classmethod
    def _bare_file_name(cls, name: str) -> str:
        """A manifest must not point the device at files outside its bundle."""
        if not name.strip(".") or "/" in name or "\\" in name:
            raise ValueError(f"{name!r} is not a file name inside the bundle")
        return name


class Artifact(BundleFile):
    format: Literal[FORMATS]
    input: TensorSpec | None = None  # None for the Keras source model
    output: TensorSpec | None = None


class DetectorArtifact(BundleFile):
    """A face detector model shipped in the bundle, so the device needs nothing else."""

    kind: Literal["blazeface"]
    variant: Literal["short", "full"]
    source: str  # where the weights come from, and their licence


class PreprocessingSpec(Strict):
    size: int = Field(ge=8, le=1024)
    channels: Literal[1, 3]
    normalization: Literal["zero_one", "minus_one_one"]
    scale: float
    offset: float
    grayscale: Literal[True] = True
    layout: Literal["NHWC"] = "NHWC"

    @model_validator(mode="after")
    def _scale_offset_match_normalization(self):
        """scale/offset are what the device applies; they must say the same as the name."""
        from edgefer.preprocess import NORMALIZATIONS

        scale, offset = NORMALIZATIONS[self.normalization]
        if abs(self.scale - scale) > 1e-9 * scale or abs(self.offset - offset) > 1e-9:
            raise ValueError(
                f"scale {self.scale} and offset {self.offset} do not match "
                f"normalization {self.normalization} (expected {scale}, {offset})"
            )
        return self


class SourceRef(Strict):
    file: str
    sha256: str


class CalibrationRef(Strict):
    file: str
    sha256: str
    count: int = Field(ge=1)


class Manifest(Strict):
    format: Literal[FORMAT]
    arch: str
    task: str
    labels: list[str] = Field(min_length=2)
    output: Literal["softmax", "sigmoid"]  # sigmoid: one output, P(labels[1])
    preprocessing: PreprocessingSpec
    source_model: SourceRef
    calibration: CalibrationRef | None
    tools: dict[str, str]
    created: str
    artifacts: list[Artifact]
    detectors: list[DetectorArtifact] = []

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str]) -> list[str]:
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"label {dup[0]!r} appears more than once; expected distinct labels")
        return labels

    @model_validator(mode="after")
    def _outputs_fit_labels(self):
        if self.output == "sigmoid" and len(self.labels) != 2:
            raise ValueError(f"a sigmoid model has two labels, got {len(self.labels)}")
        return self

    def artifact(self, fmt: str) -> Artifact:
        for a in self.artifacts:
            if a.format == fmt:
                return a
        raise EdgeferError(
            f"bundle has no {fmt} model; it has {', '.join(a.format for a in self.artifacts)}"
        )

    def detector(self, variant: str) -> DetectorArtifact:
        for d in self.detectors:
            if d.variant == variant:
                return d
        have = ", ".join(d.variant for d in self.detectors) or "none"
        raise EdgeferError(
            f"bundle has no BlazeFace {variant} detector (it has: {have}); add it with "
            f"`edgefer convert ... --detector blazeface-{variant}`"
        )


def load_manifest(bundle_dir: str | Path) -> Manifest:
    path = Path(bundle_dir) / "manifest.json"
    if not path.is_file():
        raise EdgeferError(f"{path}: not found; expected a bundle made by `edgefer convert`")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise EdgeferError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise EdgeferError(f"{path}: not UTF-8 text (byte {exc.start}); expected JSON") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an int past Python's limit
        raise EdgeferError(
            f"{path}: not JSON edgefer can read ({str(exc).splitlines()[0]})"
        ) from None
    try:
        return Manifest.model_validate(doc)
    except ValidationError as exc:
        raise EdgeferError(f"{path}: {validation_line(exc, 'field')}") from None
    except RecursionError:
        raise EdgeferError(f"{path}: nested too deeply; expected a bundle manifest") from None


def artifact_path(bundle_dir: str | Path, artifact: BundleFile) -> Path:
    """The artifact's file, which must lie inside the bundle (a symlink out of it is refused)."""
    bundle = Path(bundle_dir).resolve()
    path = (bundle / artifact.file).resolve()
    if path.parent != bundle:
        raise EdgeferError(
            f"{bundle / artifact.file}: leads outside the bundle directory; "
            "expected a file inside it"
        )
    if not path.is_file():
        raise EdgeferError(f"{bundle / artifact.file}: listed in manifest.json but missing")
    return path
