import threading

import numpy as np
import pytest

from edgefer.device.runtimes import TFLiteRuntime, _quantize


@pytest.mark.parametrize(
    "dtype, zero_point", [(np.int8, 0), (np.int8, 3), (np.int8, -1), (np.uint8, 128)]
)
def test_quantize_rounds_half_away_from_zero_like_tflite(dtype, zero_point):
    """TFLite quantizes round(x / scale) + zero_point with C's round(): halves go away from zero,
    and the zero point is added after rounding (numpy's round(x / scale + zp) differs on both)."""
    x = np.array(
        [0.25, -0.25, 0.75, -0.75, 1.25, -1.25, 0.2, -0.2], np.float32
    )  # x / 0.5: +-.5 steps
    expected = np.array([1, -1, 2, -2, 3, -3, 0, 0]) + zero_point
    np.testing.assert_array_equal(_quantize(x, dtype, 0.5, zero_point), expected)
    info = np.iinfo(dtype)
    extremes = _quantize(np.array([1e6, -1e6], np.float32), dtype, 0.5, zero_point)
    assert extremes.dtype == dtype and extremes.tolist() == [info.max, info.min]


@pytest.mark.parametrize("model", ["model_int8.tflite", "model_fp32.tflite"])
def test_one_tflite_runtime_shared_by_four_threads(tiny_bundle, model):
    """Each thread sends its own batch size (so the input is resized back and forth) and its own
    values; every result must be exactly what the runtime gives when used alone."""
    rt = TFLiteRuntime(tiny_bundle / model)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (n, 48, 48, 1)).astype(np.float32) for n in (1, 2, 3, 4)]
    expected = [rt.scores(x) for x in inputs]
    start = threading.Barrier(len(inputs))
    failures = []

    def work(t):
        start.wait()
        for _ in range(60):
            try:
                got = rt.scores(inputs[t])
            except Exception as exc:  # noqa: BLE001 - a race shows as any interpreter error
                failures.append(f"thread {t}: {type(exc).__name__}: {exc}")
                continue
            if got.shape != expected[t].shape or not np.array_equal(got, expected[t]):
                failures.append(f"thread {t}: wrong result")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(inputs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures, f"{len(failures)} failures, first: {failures[0]}"


def test_without_a_tflite_runtime_it_says_so_and_never_falls_back_to_tensorflow(monkeypatch):
    """tf.lite would pull all of TensorFlow into device/, which a Pi does not have."""
    import sys
    import types

    from edgefer.device.runtimes import tflite_module
    from edgefer.errors import EdgeferError

    for name in ("ai_edge_litert", "tflite_runtime"):
        monkeypatch.setitem(sys.modules, name, None)  # None: `import name` raises ImportError
    monkeypatch.setitem(sys.modules, "tensorflow", types.SimpleNamespace(lite="tf.lite"))
    with pytest.raises(EdgeferError, match="no TFLite runtime: pip install ai-edge-litert"):
        tflite_module()
