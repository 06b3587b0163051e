import json

import pytest

from edgefer.errors import EdgeferError
from edgefer.model_card import read_card, write_card

CARD = {
    "arch": "edge",
    "task": "fer7",
    "class_names": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
    "preprocessing": {"size": 48, "channels": 1, "normalization": "minus_one_one"},
}


def test_an_epoch_checkpoint_is_fed_like_its_run(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    write_card(run / "model.keras", CARD)
    assert read_card(run / "checkpoint" / "epoch-0007.keras")["arch"] == "edge"


def test_a_card_of_its_own_comes_first(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    write_card(run / "model.keras", CARD)
    write_card(run / "checkpoint" / "epoch-0007.keras", {**CARD, "arch": "seed-fcn7"})
    assert read_card(run / "checkpoint" / "epoch-0007.keras")["arch"] == "seed-fcn7"


def test_a_model_elsewhere_does_not_borrow_a_card_from_above(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "model.meta.json").write_text(json.dumps(CARD))
    with pytest.raises(EdgeferError, match="no m.meta.json beside it"):
        read_card(tmp_path / "models" / "m.keras")
