"""`manifest.json`: how to feed every model of a bundle. The device feeds a model only from its
manifest, never from guesses, so it is validated on load with one clear line per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefer.errors import EdgeferError

FORMAT = "edgefer-bundle/1"
FORMATS = ("keras", "tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "onnx",
           "onnx-int8", "edgetpu")


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


class Artifact(Strict):
    file: str
    format: Literal[FORMATS]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    input: TensorSpec | None = None  # None for the Keras source model
    output: TensorSpec | None = None


class PreprocessingSpec(Strict):
    size: int = Field(ge=8, le=1024)
    channels: Literal[1, 3]
    normalization: Literal["zero_one", "minus_one_one"]
    scale: float
    offset: float
    grayscale: Literal[True] = True
    layout: Literal["NHWC"] = "NHWC"


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

    def artifact(self, fmt: str) -> Artifact:
        for a in self.artifacts:
            if a.format == fmt:
                return a
        raise EdgeferError(f"bundle has no {fmt} model; it has "
                           f"{', '.join(a.format for a in self.artifacts)}")


def load_manifest(bundle_dir: str | Path) -> Manifest:
    path = Path(bundle_dir) / "manifest.json"
    if not path.is_file():
        raise EdgeferError(f"{path}: not found; expected a bundle made by `edgefer convert`")
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise EdgeferError(f"{path}: not JSON ({exc})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise EdgeferError(f"{path}: field {where}: {err['msg']}") from None
