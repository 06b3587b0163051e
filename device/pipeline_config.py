"""The device pipeline's detector and runtime options, validated in one place.

`edgefer detect` and `edgefer bench` build a `PipelineConfig` from their flags, the daemon's
config is one (`DaemonConfig` adds its own sections), and `Pipeline.from_bundle(bundle, config)`
runs one. So every option exists for both, and a bad value is the same one line whichever way it
came: `key detector.min_size: ...` from a file, `option --min-size: ...` from a flag.

The `[detector]` table is read through the detector registry (device/detectors.py): `kind` is one
of the registered detectors, and the other keys are the registered detectors' options.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

# The built-in detectors register themselves on import.
from edgefer.device import blazeface, blazeface_track, detector  # noqa: F401
from edgefer.device.backends import PREFERENCES
from edgefer.device.delegates import DelegateSpec
from edgefer.device.detectors import DETECTORS, Detect, DetectorContext, DetectorOptions
from edgefer.device.formats import NAMES as FORMATS
from edgefer.device.manifest import Manifest

# The default [detector] kind: not a detector of its own, but the fastest one the bundle allows.
AUTO = "auto"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def invalid(loc: tuple, message: str, value) -> ValidationError:
    """One validation error at `loc` (relative to the model that raises it), for checks that a
    field's own validator cannot place on the right key."""
    error = PydanticCustomError("invalid", message)
    return ValidationError.from_exception_data(
        "config", [{"type": error, "loc": loc, "input": value}]
    )


def one_of(names) -> str:
    """'a', 'b' or 'c': how pydantic lists a Literal's values."""
    quoted = [f"'{n}'" for n in names]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


class DetectorConfig(BaseModel):
    """[detector]: `kind` names one of the registered detectors; the table's other keys are the
    registered detectors' options, each checked by its own model. All of them, not only the
    chosen one's: switching `kind` stays a one-line change, and a misspelt option of another
    detector is refused rather than ignored."""

    model_config = ConfigDict(frozen=True)

    kind: str = AUTO
    options: dict[str, SerializeAsAny[DetectorOptions]]  # every registered detector's, by kind

    @model_validator(mode="before")
    @classmethod
    def _by_registry(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # pydantic says that a table was expected
        given = dict(data)
        kind = given.pop("kind", AUTO)
        if not (isinstance(kind, str) and (kind == AUTO or kind in DETECTORS)):
            raise invalid(("kind",), f"Input should be {one_of([AUTO, *DETECTORS])}", kind)
        owner = {key: k for k, entry in DETECTORS.items() for key in entry.options.model_fields}
        for key, value in given.items():
            if key not in owner:
                raise invalid((key,), "Extra inputs are not permitted", value)
        options = {
            k: entry.options.model_validate({key: v for key, v in given.items() if owner[key] == k})
            for k, entry in DETECTORS.items()
        }
        if kind == AUTO:  # options set for one detector choose it
            chosen = {k: o.changed() for k, o in options.items() if o.changed()}
            if len(chosen) > 1:
                keys = "; ".join(f"{k}: {', '.join(v)}" for k, v in chosen.items())
                raise invalid(
                    ("kind",),
                    f"'auto', but options of more than one detector are set ({keys}); "
                    "set kind to the detector that runs",
                    kind,
                )
            kind = next(iter(chosen), AUTO)
        return {"kind": kind, "options": options}

    @model_serializer(mode="wrap")
    def _flat(self, handler) -> dict:
        """As the table is written: `kind` and the options side by side."""
        options = handler(self)["options"]
        return {"kind": self.kind} | {k: v for opts in options.values() for k, v in opts.items()}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler) -> dict:
        """The table as an editor sees it: every registered detector's options as keys."""
        properties = {"kind": {"enum": [AUTO, *DETECTORS], "type": "string", "default": AUTO}}
        for entry in DETECTORS.values():
            schema = handler.resolve_ref_schema(handler(entry.options.__pydantic_core_schema__))
            properties |= schema["properties"]
        return {
            "title": cls.__name__,
            "description": " ".join(cls.__doc__.split()),
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }

    def kind_for(self, manifest: Manifest) -> str:
        """The detector that runs on this bundle: `kind` (which `auto` becomes when options of
        one detector are set, as `min_size = 60` chooses Haar), or for `auto` blazeface-track where
        the bundle has both BlazeFace models (the bundled ones do; `edgefer convert --detector`
        adds them) and haar where it has not. Why: on issue 25's bench videos blazeface-track
        runs ~2.7x Haar's ROI search and finds every true face, where the ROI search misses
        2.5-15% (docs/BENCHMARKS.md, "Every face, fast"); Haar needs no detector model."""
        if self.kind != AUTO:
            return self.kind
        have = {d.variant for d in manifest.detectors}
        return "blazeface-track" if {"short", "full"} <= have else "haar"

    def build(self, context: DetectorContext) -> Detect:
        kind = self.kind_for(context.manifest)
        return DETECTORS[kind].build(self.options[kind], context)

    def check_bundle(self, manifest: Manifest) -> None:
        """EdgeferError where the bundle lacks a model the detector loads."""
        kind = self.kind_for(manifest)
        DETECTORS[kind].check_bundle(self.options[kind], manifest)


class DelegateConfig(Section):
    """The TFLite delegate that backend edgetpu, gpu or external loads (cpu and onnx load none)."""

    library: str | None = None  # default: libedgetpu for edgetpu, the TFLite GPU delegate for gpu
    options: dict[str, str | int | float | bool] = {}  # e.g. device = "usb:0" for an Edge TPU


class PipelineConfig(Section):
    backend: Literal[tuple(PREFERENCES)] = "cpu"  # the format table's backends
    threads: int = Field(1, ge=1, le=64)
    delegate: DelegateConfig = DelegateConfig()
    fallback: Literal["cpu"] | None = None  # run on the CPU if the delegate cannot load
    format: Literal[FORMATS] | None = None  # force a bundle artifact (default: the backend's best)
    providers: list[str] | None = None  # ONNX Runtime execution providers
    margin: float = Field(0.0, ge=0, le=1)  # grow face boxes by this share per side for the crop
    # Read each tracked face's expression every N frames, a new or moved face at once (the
    # scores carried in between): for video only (device/expression_memory.py).
    expression_every: int = Field(1, ge=1, le=30)
    detector: DetectorConfig = DetectorConfig()

    @model_validator(mode="after")
    def _external_names_its_library(self):
        """Refused at load: an external delegate has no default library to fall back on."""
        if self.backend == "external" and not self.delegate.library:
            raise invalid(
                ("delegate", "library"), "backend external needs the delegate library's path", None
            )
        return self

    def delegate_spec(self) -> DelegateSpec | None:
        """The backend's delegate; None for cpu (XNNPACK is built in) and onnx (no TFLite)."""
        if self.backend in ("cpu", "onnx"):
            return None
        return DelegateSpec(self.backend, self.delegate.library, dict(self.delegate.options))
