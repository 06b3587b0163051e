import numpy as np
import pytest

from edgefer.errors import EdgeferError
from edgefer.labels import parse_task


def test_sad_vs_fear_relabels_sad_0_fear_1():
    task = parse_task("sad-vs-fear")
    keep, new = task.relabel(np.array([4, 2, 3, 4, 0]))
    np.testing.assert_array_equal(keep, [True, True, False, True, False])
    np.testing.assert_array_equal(new, [0, 1, 0])
    assert task.class_names == ("sad", "fear")


def test_class_subset_by_name_or_number():
    task = parse_task("happy,5,neutral")
    assert task.source_classes == (3, 5, 6) and task.num_classes == 3


@pytest.mark.parametrize("spec", ["fer8", "happy,joy", "happy,happy"])
def test_bad_task(spec):
    with pytest.raises(EdgeferError, match="task|class"):
        parse_task(spec)
