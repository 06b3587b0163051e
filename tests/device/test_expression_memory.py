import numpy as np
import pytest

from edgefer.device.expression_memory import ExpressionMemory
from edgefer.device.pipeline import Pipeline
from edgefer.device.pipeline_config import PipelineConfig


class Reader:
    """read(indices) for ExpressionMemory.scores: each face's scores say which box and which
    call they came from, and every call is logged."""

    def __init__(self):
        self.calls: list[list] = []

    def __call__(self, boxes):
        def read(due):
            self.calls.append([boxes[i] for i in due])
            return np.array([[len(self.calls), *boxes[i]] for i in due], np.float32)

        return read


def run(memory: ExpressionMemory, frames, reader: Reader):
    return [memory.scores(boxes, reader(boxes)) for boxes in frames]


def test_every_1_reads_every_face_on_every_frame():
    reader, face = Reader(), (100, 100, 80, 80)
    run(ExpressionMemory(1), [[face]] * 4, reader)
    assert reader.calls == [[face]] * 4


def test_a_still_face_is_read_every_n_frames_and_carried_in_between():
    reader, face = Reader(), (100, 100, 80, 80)
    out = run(ExpressionMemory(3), [[face]] * 7, reader)
    assert len(reader.calls) == 3  # frames 0, 3 and 6
    assert [int(s[0][0]) for s in out] == [1, 1, 1, 2, 2, 2, 3]


def test_a_new_face_is_read_at_once_not_given_another_faces_scores():
    reader, a, b = Reader(), (100, 100, 80, 80), (400, 100, 80, 80)
    out = run(ExpressionMemory(5), [[a], [a, b]], reader)
    assert reader.calls == [[a], [b]]
    assert tuple(out[1][1][1:]) == b and tuple(out[1][0][1:]) == a


def test_a_face_that_jumped_or_grew_is_read_again():
    reader = Reader()
    frames = [
        [(100, 100, 80, 80)],
        [(104, 102, 80, 80)],
        [(160, 100, 80, 80)],
        [(160, 100, 140, 140)],
    ]
    run(ExpressionMemory(10), frames, reader)
    assert reader.calls == [frames[0], frames[2], frames[3]]  # a 4 px step is the same face


def test_faces_keep_their_own_scores_when_the_detector_lists_them_in_another_order():
    reader, a, b = Reader(), (100, 100, 80, 80), (400, 100, 80, 80)
    out = run(ExpressionMemory(4), [[a, b], [b, a], [b, a]], reader)
    assert len(reader.calls) == 1
    for scores in out[1:]:
        assert tuple(scores[0][1:]) == b and tuple(scores[1][1:]) == a


def test_reset_forgets_every_face():
    reader, face = Reader(), (100, 100, 80, 80)
    memory = ExpressionMemory(5)
    run(memory, [[face]], reader)
    memory.reset()
    run(memory, [[face]], reader)
    assert len(reader.calls) == 2


def test_every_below_1_is_refused():
    with pytest.raises(ValueError, match="every: 0"):
        ExpressionMemory(0)


def test_the_pipeline_reads_a_followed_face_every_n_frames(tiny_bundle, astronaut_bgr):
    """Haar with its ROI search follows the still face; with expression_every 3 the model reads
    it on frames 0, 3, 6, and the frames between carry the scores of the last read."""
    every = Pipeline.from_bundle(tiny_bundle, PipelineConfig())
    third = Pipeline.from_bundle(tiny_bundle, PipelineConfig(expression_every=3))
    frames = [np.roll(astronaut_bgr, 2 * i, axis=1) for i in range(7)]  # 2 px a frame
    results = [(every(f), third(f)) for f in frames]
    assert every.memory.reads == 7 and third.memory.reads == 3
    for i, (e, t) in enumerate(results):
        (de,), (dt,) = e.detections, t.detections
        read = results[i - i % 3][0].detections[0]  # what every-frame reading said at the read
        assert dt.scores == read.scores and dt.box == de.box
        assert (t.timings["inference"] > 0) == (i % 3 == 0)
