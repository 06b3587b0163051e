import numpy as np
import pytest

from edgefer.device.daemon.config import FaceTrackConfig, load_config
from edgefer.device.daemon.tracks import Tracker, iou_matrix
from edgefer.errors import EdgeferError

HAPPY, SAD = np.eye(7)[3], np.eye(7)[4]


def test_iou_matrix():
    ious = iou_matrix([(0, 0, 10, 10)], [(0, 0, 10, 10), (5, 0, 10, 10), (20, 20, 5, 5)])
    np.testing.assert_allclose(ious, [[1.0, 50 / 150, 0.0]])
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_ids_are_stable_while_faces_move_and_new_faces_get_new_ids():
    tr = Tracker()
    first = tr.update(0.0, [((100, 100, 50, 50), HAPPY), ((300, 100, 50, 50), SAD)])
    assert [t.id for t in first.new] == [1, 2]
    for i in range(1, 10):  # both drift right by 5 px a frame
        up = tr.update(
            i * 0.1, [((300 + 5 * i, 100, 50, 50), SAD), ((100 + 5 * i, 100, 50, 50), HAPPY)]
        )
        assert up.new == [] and sorted(t.id for t in up.seen) == [1, 2]
    assert {t.id: t.box[0] for t in tr.tracks} == {1: 145, 2: 345}
    up = tr.update(1.0, [((600, 400, 40, 40), HAPPY)])
    assert [t.id for t in up.new] == [3]


def test_a_track_closes_after_lost_after_seconds():
    tr = Tracker(FaceTrackConfig(lost_after=0.5))
    tr.update(0.0, [((0, 0, 50, 50), HAPPY)])
    assert tr.update(0.4, []).lost == []
    (lost,) = tr.update(0.6, []).lost
    assert lost.id == 1 and tr.tracks == []


@pytest.mark.parametrize("smoothing", ["ema", "vote"])
def test_one_odd_frame_does_not_flip_the_label(smoothing):
    tr = Tracker(FaceTrackConfig(smoothing=smoothing, ema_alpha=0.3, vote_window=5))
    box = (0, 0, 50, 50)
    for i in range(5):
        tr.update(i * 0.1, [(box, HAPPY)])
    tr.update(0.5, [(box, SAD)])
    assert tr.tracks[0].label_index() == 3
    for i in range(6, 12):
        tr.update(i * 0.1, [(box, SAD)])
    assert tr.tracks[0].label_index() == 4  # a lasting change does come through


def test_config_is_validated():
    with pytest.raises(EdgeferError, match="key tracking.smoothing"):
        load_config(None, ["tracking.smoothing=median"], environ={})
    with pytest.raises(EdgeferError, match="key cameras.door.tracking.iou_threshold"):
        load_config(None, ["cameras.door.tracking.iou_threshold=0"], environ={})


def test_the_vote_looks_only_at_the_last_vote_window_frames():
    tr = Tracker(FaceTrackConfig(smoothing="vote", vote_window=3))
    box = (0, 0, 50, 50)
    for i in range(10):
        tr.update(i * 0.1, [(box, HAPPY)])
    tr.update(1.0, [(box, SAD)])
    assert tr.tracks[0].label_index() == 3  # 2 happy, 1 sad in the window
    tr.update(1.1, [(box, SAD)])
    assert tr.tracks[0].label_index() == 4  # 1 happy, 2 sad: ten old happy frames do not count
