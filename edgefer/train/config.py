"""Training recipes as data: each arch's published recipe is its default, every field can be
overridden by a config file (TOML or JSON) and then by command-line flags."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from edgefer.errors import EdgeferError
from edgefer.labels import parse_task
from edgefer.preprocess import Preprocessing


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    task: str = "fer7"
    labels: str = "fer"  # fer | ferplus (FER+ soft labels)
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    normalization: str = "zero_one"
    channels: int = 1
    size: int = 48
    # Augmentation (Keras ImageDataGenerator semantics): degrees, pixels, zoom range, shear degrees.
    rotation: float = 0.0
    shift: float = 0.0
    zoom_min: float = 1.0
    zoom_max: float = 1.0
    shear: float = 0.0
    hflip: bool = True
    dropout: float = 0.0
    patience: int = 0  # early stopping patience; 0 = off. ReduceLROnPlateau x0.1 at patience/4
    balance: str = "none"  # none | weights (class weights) | sampling (balanced batches)
    label_smoothing: float = 0.0
    # plateau: x0.1 when val_loss stalls (patience/4); cosine: decay to 0 over `epochs` after a
    # linear warm-up, a function of the epoch only (so a resumed run gets the same rates).
    schedule: str = "plateau"
    warmup_epochs: int = 0
    mixup: float = 0.0  # Beta(alpha, alpha) mixing of image pairs within a batch; 0 = off
    head_pooling: str = "arch"  # arch = the arch's own; max | avg for archs with a pooling head
    width: float = 1.0  # channel multiplier; only the edge arch has one
    # Distillation: a file from `edgefer teach`; targets = (1 - distill) one-hot + distill teacher.
    teacher: str = ""
    distill: float = 0.0
    val_fraction: float = 0.0  # >0: pool every split and hold out this stratified fraction
    train_fraction: float = 1.0  # <1: train on a seeded stratified share (a CPU budget)
    train_split: str = "auto"
    val_split: str = "auto"
    test_split: str = "auto"
    seed: int = 0

    def __post_init__(self):
        parse_task(self.task)
        Preprocessing(self.size, self.channels, self.normalization)  # raises if invalid
        checks = {
            "labels": self.labels in ("fer", "ferplus"),
            "balance": self.balance in ("none", "weights", "sampling"),
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "dropout": 0 <= self.dropout < 1,
            "val_fraction": 0 <= self.val_fraction < 1,
            "train_fraction": 0 < self.train_fraction <= 1,
            "zoom_min": 0 < self.zoom_min <= self.zoom_max,
            "patience": self.patience >= 0,
            "schedule": self.schedule in ("plateau", "cosine"),
            "warmup_epochs": 0 <= self.warmup_epochs < self.epochs,
            "mixup": self.mixup >= 0,
            "width": self.width > 0 and (self.width == 1.0 or self.arch == "edge"),
            # Teacher targets replace FER2013's hard labels on a softmax model only.
            "distill": 0 <= self.distill <= 1 and (self.distill > 0) == bool(self.teacher),
            "teacher": not self.teacher or (self.labels == "fer" and self.arch != "seed-binary"),
            # seed-binary's head is Flatten + Dense: it has no global pooling to choose.
            "head_pooling": self.head_pooling in ("arch", "max", "avg")
            and (self.head_pooling == "arch" or self.arch != "seed-binary"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise EdgeferError(f"config field {bad[0]} = {getattr(self, bad[0])!r}: out of range")

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            size=self.size, channels=self.channels, normalization=self.normalization
        )

    def to_dict(self) -> dict:
        return asdict(self)


ARCH_DEFAULTS = {
    # Paper 1: rescale 1/255, rotation 20, horizontal flip, shear 0.2, Adam, BCE, batch 64, 60/40.
    # (ImageDataGenerator reads shear_range in degrees, so 0.2 is a 0.2-degree shear.)
    "seed-binary": dict(
        task="sad-vs-fear",
        normalization="zero_one",
        channels=3,
        rotation=20,
        shear=0.2,
        hflip=True,
        batch_size=64,
        epochs=50,
        val_fraction=0.4,
    ),
    # Paper 2: [-1,1], rotation up to 90, shifts of 10 px, zoom 0.7-1.3, flip, batch 32,
    # dropout 0.6, early stopping (patience P) with ReduceLROnPlateau x0.1 at P/4.
    "seed-fcn7": dict(
        task="fer7",
        normalization="minus_one_one",
        channels=1,
        rotation=90,
        shift=10,
        zoom_min=0.7,
        zoom_max=1.3,
        hflip=True,
        batch_size=32,
        dropout=0.6,
        epochs=200,
        patience=20,
    ),
    # edgefer's own: milder augmentation (FER faces are aligned), label smoothing, batch 64.
    "edge": dict(
        task="fer7",
        normalization="minus_one_one",
        channels=1,
        rotation=15,
        shift=4,
        zoom_min=0.9,
        zoom_max=1.1,
        hflip=True,
        batch_size=64,
        dropout=0.4,
        epochs=120,
        patience=20,
        label_smoothing=0.1,
    ),
}


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise EdgeferError(
            f"{path}: cannot read as a {path.suffix or 'JSON'} config ({exc})"
        ) from None
    if not isinstance(data, dict):
        raise EdgeferError(f"{path}: expected a table/object of config fields")
    return data


def resolve(arch: str, config_file: str | None = None, **overrides) -> TrainConfig:
    """Arch defaults <- config file <- flags (flags given as None are not set)."""
    from edgefer.models import get_arch  # validates the arch name

    get_arch(arch)
    values = dict(ARCH_DEFAULTS[arch])
    known = {f.name for f in fields(TrainConfig)}
    if config_file:
        file_values = read_config_file(config_file)
        unknown = sorted(set(file_values) - known)
        if unknown:
            raise EdgeferError(
                f"{config_file}: unknown field {unknown[0]}; expected some of "
                f"{', '.join(sorted(known))}"
            )
        values.update(file_values)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["arch"] = arch
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise EdgeferError(f"config: {exc}") from None


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise EdgeferError(
            f"{run_dir}: no config.json; expected a run directory made by edgefer train"
        )
    return replace(TrainConfig(arch="seed-fcn7"), **json.loads(path.read_text()))
