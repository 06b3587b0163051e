"""`model.meta.json`: what travels beside a trained model so nobody has to guess how to feed it
(task, class order, preprocessing, input shape). The converter copies it into the manifest."""

from __future__ import annotations

import json
from pathlib import Path

from edgefer.atomic import write_text
from edgefer.errors import EdgeferError
from edgefer.preprocess import Preprocessing


def card_path(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.name.split(".")[0] + ".meta.json")


def write_card(model_path: str | Path, card: dict) -> None:
    write_text(card_path(model_path), json.dumps(card, indent=2) + "\n")


def read_card(model_path: str | Path) -> dict:
    """The card beside the model; for an epoch checkpoint (RUN/checkpoint/epoch-N.keras), which
    has none, its run's: every epoch of a run is fed the same way (a teacher may be one)."""
    path = card_path(model_path)
    run_card = Path(model_path).parent.parent / "model.meta.json"
    if not path.is_file() and Path(model_path).parent.name == "checkpoint" and run_card.is_file():
        path = run_card
    if not path.is_file():
        raise EdgeferError(
            f"{model_path}: no {path.name} beside it; expected a model trained by "
            "`edgefer train` (it records the task and preprocessing)"
        )
    try:
        card = json.loads(path.read_text())
        Preprocessing.from_dict(card["preprocessing"], f"{path}: preprocessing")
        card["class_names"], card["task"], card["arch"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EdgeferError(
            f"{path}: expected arch, task, class_names, preprocessing ({exc})"
        ) from None
    return card
