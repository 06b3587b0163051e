import pytest

from edgefer.errors import EdgeferError
from edgefer.models import count_macs, edge, get_arch, seed_binary, seed_fcn7


def test_paper_parameter_counts():
    assert seed_binary().count_params() == 520_513
    assert seed_fcn7().count_params() == 642_935


def test_edge_is_small_static_and_uses_mappable_ops():
    m = edge()
    assert m.count_params() <= 1_500_000
    assert m.input_shape == (None, 48, 48, 1)
    allowed = {
        "InputLayer",
        "Conv2D",
        "DepthwiseConv2D",
        "BatchNormalization",
        "ReLU",
        "Add",
        "MaxPooling2D",
        "GlobalAveragePooling2D",
        "Dropout",
        "Dense",
    }
    assert {type(layer).__name__ for layer in m.layers} <= allowed


def test_macs_of_a_known_layer_stack():
    # seed-binary: first conv 46*46*32*3*9 MACs, ..., dense 256*512 + 512*1
    assert count_macs(seed_binary()) == 15_986_560


def test_binary_arch_needs_two_classes_and_unknown_arch():
    with pytest.raises(EdgeferError, match="needs a 2-class task"):
        seed_binary(num_classes=7)
    with pytest.raises(EdgeferError, match="arch 'resnet': expected one of seed-binary"):
        get_arch("resnet")


def test_head_pooling_can_be_chosen_and_is_validated():
    from edgefer.errors import EdgeferError
    from edgefer.models import seed_fcn7
    from edgefer.train.config import resolve

    names = [type(layer).__name__ for layer in seed_fcn7(head_pooling="avg").layers]
    assert "GlobalAveragePooling2D" in names and "GlobalMaxPooling2D" not in names
    assert "GlobalMaxPooling2D" in [type(layer).__name__ for layer in seed_fcn7().layers]
    assert resolve("seed-fcn7", head_pooling="avg").head_pooling == "avg"
    with pytest.raises(EdgeferError, match="head_pooling"):
        resolve("seed-binary", head_pooling="max")
    with pytest.raises(EdgeferError, match="head_pooling 'sum'"):
        seed_fcn7(head_pooling="sum")


def test_edge_width_scales_channels_in_multiples_of_eight():
    narrow, wide = edge(width=1.0), edge(width=1.25)
    assert narrow.count_params() == 679_463
    assert wide.count_params() == 1_056_367  # about 1.25^2 times
    convs = [layer for layer in wide.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs[:2]] == [40, 40]
    assert all(c.filters % 8 == 0 for c in convs)


def test_width_is_refused_for_archs_without_one():
    from edgefer.train.config import resolve

    assert resolve("edge", width=1.25).width == 1.25
    with pytest.raises(EdgeferError, match="config field width"):
        resolve("seed-fcn7", width=1.25)
