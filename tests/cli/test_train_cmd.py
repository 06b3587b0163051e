import json
import os
import subprocess
import sys

import pytest

from edgefer.train import callbacks
from tests.cli_helpers import run

RUN_FILES = {
    "model.keras",
    "model.meta.json",
    "history.csv",
    "curves.png",
    "metrics.json",
    "confusion.png",
    "config.json",
    "checkpoint",
}


def test_two_epoch_train_writes_every_run_file(tiny_csv, tmp_path):
    out = tmp_path / "run"
    res = run(
        "train",
        "--arch",
        "edge",
        "--data",
        tiny_csv,
        "--out",
        out,
        "--epochs",
        2,
        "--batch-size",
        16,
        "--seed",
        1,
    )
    assert res.exit_code == 0, res.output
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["test"]["split"] == "PrivateTest"
    assert len(metrics["test"]["confusion"]) == 7
    assert (out / "history.csv").read_text().count("\n") == 3
    assert (
        json.loads((out / "model.meta.json").read_text())["preprocessing"]["normalization"]
        == "minus_one_one"
    )

    ev = run(
        "evaluate",
        out / "model.keras",
        "--data",
        tiny_csv,
        "--split",
        "PrivateTest",
        "--json",
        "--plot",
        tmp_path / "cm.png",
    )
    assert ev.exit_code == 0, ev.output
    report = json.loads(ev.stdout)
    assert report["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert (tmp_path / "cm.png").stat().st_size > 1000
    table = run("evaluate", out / "model.keras", "--data", tiny_csv, "--split", "PublicTest")
    assert "macro" in table.output and "confusion (rows = true" in table.output

    again = run("train", "--arch", "edge", "--data", tiny_csv, "--out", out)
    assert again.exit_code == 2 and "already exists" in again.output


def train_killed_after_epoch_2(monkeypatch, *args):
    """Run `edgefer train ARGS` and kill it right after epoch 2's checkpoint, like a session end."""
    original = callbacks.EpochCheckpoint.on_epoch_end

    def killed_after_epoch_2(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.EpochCheckpoint, "on_epoch_end", killed_after_epoch_2)
    res = run("train", *args)
    monkeypatch.setattr(callbacks.EpochCheckpoint, "on_epoch_end", original)
    return res


def test_resume_continues_from_the_next_epoch(tiny_csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    res = train_killed_after_epoch_2(
        monkeypatch,
        "--arch",
        "seed-fcn7",
        "--data",
        tiny_csv,
        "--out",
        out,
        "--epochs",
        3,
        "--batch-size",
        32,
        "--patience",
        8,
    )
    assert res.exit_code != 0 and not (out / "metrics.json").exists()
    state = json.loads((out / "checkpoint/state.json").read_text())
    assert state["epoch"] == 2 and state["callbacks"]["early_stopping"]["wait"] is not None

    res = run("train", "--data", tiny_csv, "--resume", out)
    assert res.exit_code == 0, res.output
    assert "epochs 3..3" in res.output
    history = (out / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3"]
    assert [p.name for p in (out / "checkpoint").iterdir()] == ["state.json"]  # finished


def test_resumed_run_matches_an_uninterrupted_one(tiny_csv, tmp_path, monkeypatch):
    """Kill after epoch 2 of 4, resume: every epoch's loss and the final weights equal those of a
    straight run (dropout, augmentation, mixup and the cosine schedule all resume exactly)."""
    args = [
        "--arch",
        "seed-fcn7",
        "--data",
        tiny_csv,
        "--epochs",
        4,
        "--batch-size",
        32,
        "--schedule",
        "cosine",
        "--warmup-epochs",
        1,
        "--mixup",
        0.4,
    ]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run("train", *args, "--out", straight).exit_code == 0
    assert train_killed_after_epoch_2(monkeypatch, *args, "--out", resumed).exit_code != 0
    assert run("train", "--data", tiny_csv, "--resume", resumed).exit_code == 0

    def losses(run_dir):
        rows = (run_dir / "history.csv").read_text().splitlines()[1:]
        return [[float(v) for v in line.split(",")[1:3] + line.split(",")[5:6]] for line in rows]

    assert len(losses(straight)) == 4
    assert losses(resumed) == losses(straight)  # loss, accuracy, learning rate per epoch


def test_bad_inputs_exit_2(tiny_csv, tmp_path):
    assert (
        "arch 'vgg'"
        in run("train", "--arch", "vgg", "--data", tiny_csv, "--out", tmp_path / "a").output
    )
    not_model = tmp_path / "m.keras"
    not_model.write_text("hello")
    (tmp_path / "m.meta.json").write_text(
        json.dumps(
            {
                "arch": "edge",
                "task": "fer7",
                "class_names": [],
                "preprocessing": {"size": 48, "channels": 1, "normalization": "zero_one"},
            }
        )
    )
    res = run("evaluate", not_model, "--data", tiny_csv)
    assert res.exit_code == 2 and "not a Keras model" in res.output
    res = run("evaluate", tmp_path / "none.keras", "--data", tiny_csv)
    assert res.exit_code == 2 and "no none.meta.json beside it" in res.output
    res = run(
        "train",
        "--arch",
        "edge",
        "--data",
        tiny_csv,
        "--out",
        tmp_path / "b",
        "--task",
        "sad,fear",
        "--val-fraction",
        "0.3",
        "--epochs",
        "1",
    )
    assert res.exit_code == 0
    res = run(
        "train",
        "--arch",
        "seed-binary",
        "--data",
        tiny_csv,
        "--out",
        tmp_path / "c",
        "--task",
        "fer7",
    )
    assert res.exit_code == 2 and "needs a 2-class task" in res.output


def test_missing_class_for_task(tmp_path):
    from tests.conftest import csv_rows, synthetic_faces, write_csv

    images, labels = synthetic_faces(14)
    labels[labels == 2] = 4  # no fear at all
    path = write_csv(tmp_path / "nofear.csv", csv_rows(images, labels, ["Training"] * 14))
    res = run("train", "--arch", "seed-binary", "--data", path, "--out", tmp_path / "r")
    assert res.exit_code == 2 and "no images of fear; task sad-vs-fear needs" in res.output


def test_input_shape_mismatch_is_an_error(tiny_csv, tmp_path):
    import numpy as np

    from edgefer.errors import EdgeferError
    from edgefer.evaluate import predict_keras
    from edgefer.models import seed_fcn7

    with pytest.raises(
        EdgeferError, match=r"model input \(48, 48, 1\) does not match the data \(48, 48, 3\)"
    ):
        predict_keras(seed_fcn7(), np.zeros((2, 48, 48, 3), np.float32))


def test_mirrored_on_two_logical_cpus(tiny_csv, tmp_path):
    """Runs in a fresh process: logical CPU devices must be set before TensorFlow starts."""
    out = tmp_path / "dist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefer",
            "train",
            "--arch",
            "edge",
            "--data",
            str(tiny_csv),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--distribute",
            "mirrored",
            "--cpu-replicas",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 replica(s)" in proc.stderr
    assert (out / "model.keras").is_file()


@pytest.mark.parametrize(("setting", "expected"), [(None, "tcmalloc"), ("system", "system")])
def test_train_restarts_under_tcmalloc_unless_told_not_to(tiny_csv, tmp_path, setting, expected):
    """The console entry re-executes `train` with tcmalloc preloaded (CI installs
    libtcmalloc-minimal4); the run log names the allocator the process really has loaded."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEFER_ALLOCATOR", "LD_PRELOAD")}
    if setting:
        env["EDGEFER_ALLOCATOR"] = setting
    proc = subprocess.run(
        [sys.executable, "-m", "edgefer", "train", "--arch", "edge", "--data", str(tiny_csv)]
        + ["--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"malloc: {expected}" in proc.stderr


def test_sweep_keeps_the_best_of_each_stage(tiny_csv, tmp_path):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--arch",
        "edge",
        "--data",
        tiny_csv,
        "--out",
        out,
        "--batch-sizes",
        "16,32",
        "--epochs-list",
        "1,5",
        "--dropouts",
        "0.2",
        "--max-epochs",
        1,
        "--data-fraction",
        0.5,
    ]
    res = run(*args)
    assert res.exit_code == 0, res.output
    lines = (out / "sweep.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 + 1 + 1  # epochs 1 and 5 both cap to 1
    rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    batch_rows = rows[:2]
    best_batch = max(batch_rows, key=lambda r: float(r["val_accuracy"]))["value"]
    assert all(r["batch_size"] == best_batch for r in rows[2:])
    assert "best: batch_size" in res.output
    again = run(*args)  # every trial finished: resumes instantly with the same table
    assert again.exit_code == 0 and (out / "sweep.csv").read_text().splitlines() == lines


def test_train_on_ferplus_soft_labels(fer_csv, tmp_path):
    from tests.data.test_ferplus import fer_usages, write_ferplus

    votes = [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0] for _ in range(28)]
    for i, v in enumerate(votes):  # FER+ column order: neutral happiness surprise sadness anger ...
        v[i % 7] = 7
        v[(i + 1) % 7] = 3
    (tmp_path / "labels").mkdir()  # not beside fer.csv, where --labels ferplus looks by default
    ferplus = write_ferplus(tmp_path / "labels" / "fer2013new.csv", fer_usages(), votes)
    out = tmp_path / "run"
    res = run(
        "train",
        "--arch",
        "edge",
        "--data",
        fer_csv,
        "--labels",
        "ferplus",
        "--ferplus",
        ferplus,
        "--out",
        out,
        "--epochs",
        1,
        "--batch-size",
        8,
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["labels"] == "ferplus"
    missing = run(
        "train",
        "--arch",
        "edge",
        "--data",
        fer_csv,
        "--labels",
        "ferplus",
        "--out",
        tmp_path / "r2",
    )
    assert missing.exit_code == 2 and "fer2013new.csv: FER+ label file not found" in missing.output


def test_resume_after_an_early_stop_does_not_train_again(tiny_csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_killed_after_epoch_2(
        monkeypatch,
        "--arch",
        "edge",
        "--data",
        tiny_csv,
        "--out",
        out,
        "--epochs",
        5,
        "--batch-size",
        32,
        "--patience",
        1,
    )
    state_path = out / "checkpoint/state.json"
    state = json.loads(state_path.read_text())
    state["stopped_early"] = True  # as if EarlyStopping had fired at epoch 2, just before the kill
    state_path.write_text(json.dumps(state))
    res = run("train", "--data", tiny_csv, "--resume", out)
    assert res.exit_code == 0, res.output
    assert len((out / "history.csv").read_text().splitlines()) == 3  # header + epochs 1, 2
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2


def test_models_lists_the_bundled_models_with_their_measured_figures():
    import json

    from edgefer.bundled import NAMES, bundled_path

    res = run("models")
    assert res.exit_code == 0, res.output
    assert (
        "bundled models (pick one with --model NAME; edge when --model is not given)" in res.output
    )
    for name in NAMES:
        report = json.loads((bundled_path(name) / "benchmark.json").read_text())
        for row in report["rows"]:  # the figures come from each bundle's own report
            line = next(
                x
                for x in res.output.splitlines()
                if x.split()[:1] == [name] and f" {row['format']} " in x
            )
            assert line.rstrip().endswith(f"{100 * row['accuracy']:.2f}"), line
    assert any(x.startswith("edge (default)") for x in res.output.splitlines())


def test_jax_backend_trains_a_model_tensorflow_scores_the_same(tiny_csv, tmp_path):
    """The GPU box trains on Keras' JAX backend (it has no TensorFlow); the .keras file it
    writes is then converted and scored here on TensorFlow. Train a width-1.25 edge model under
    JAX in a child process, with TensorFlow made unimportable there, then score it in this
    (TensorFlow) process: every recorded figure must come out the same."""
    out = tmp_path / "jax_run"
    blocker = tmp_path / "no_tf"
    blocker.mkdir()
    (blocker / "tensorflow.py").write_text("raise ImportError('no TensorFlow on this box')\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env.get("PYTHONPATH", "")])
    args = ["--arch", "edge", "--width", "1.25", "--epochs", "2", "--batch-size", "16"]
    proc = subprocess.run(
        [sys.executable, "-m", "edgefer", "train", "--data", str(tiny_csv), "--out", str(out)]
        + args,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["width"] == 1.25
    metrics = json.loads((out / "metrics.json").read_text())
    res = run(
        "evaluate", out / "model.keras", "--data", tiny_csv, "--split", "PrivateTest", "--json"
    )
    assert res.exit_code == 0, res.output
    scored = json.loads(res.output[res.output.index("{") :])
    assert scored["accuracy"] == metrics["test"]["accuracy"]
    assert scored["confusion"] == metrics["test"]["confusion"]


def test_teach_writes_the_ensembles_flip_averaged_softened_answers(tiny_run, tiny_csv, tmp_path):
    import numpy as np

    from edgefer.data import load_fer
    from edgefer.evaluate import open_model
    from edgefer.train.teacher import soften, teacher_targets

    model = tiny_run / "model.keras"
    out = tmp_path / "teacher.npz"
    res = run("teach", "--model", model, "--model", model, "--data", tiny_csv,
              "--temperature", 2, "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Training" in res.output and "PublicTest" in res.output
    images = load_fer(tiny_csv).split("Training").images
    runtime, _, names, prep = open_model(model)
    direct = runtime.scores(prep.apply(images)) + runtime.scores(prep.apply(images[:, :, ::-1]))
    assert np.allclose(teacher_targets(out, images, names), soften(direct / 2, 2.0), atol=1e-5)
    meta = json.loads(str(np.load(out)["meta"]))
    assert (meta["temperature"], meta["flip"], meta["split"]) == (2.0, True, "Training")
    assert len(meta["teachers"]) == 2 and len(meta["teachers"][0]["sha256"]) == 64


def test_a_distilled_student_learns_what_its_teacher_says(tiny_csv, tmp_path):
    """A teacher that answers 'the next class' for every training face, at distill = 1: the
    student must learn the teacher's answers, not FER2013's labels."""
    import numpy as np

    from edgefer.data import load_fer
    from edgefer.evaluate import open_model
    from edgefer.train.teacher import write_teacher_file

    train = load_fer(tiny_csv).split("Training")
    shifted = np.eye(7, dtype=np.float32)[(train.labels + 1) % 7]
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    write_teacher_file(tmp_path / "t.npz", train.images, shifted, names, {})
    config = tmp_path / "kd.toml"
    config.write_text(
        "rotation = 0\nshift = 2\nzoom_min = 1.0\nzoom_max = 1.0\ndropout = 0.2\npatience = 0\n"
        f"epochs = 8\nbatch_size = 8\nteacher = '{tmp_path / 't.npz'}'\ndistill = 1.0\n"
    )
    res = run("train", "--arch", "seed-fcn7", "--data", tiny_csv, "--out", tmp_path / "run",
              "--config", config)  # fmt: skip
    assert res.exit_code == 0, res.output
    runtime, _, _, prep = open_model(tmp_path / "run" / "model.keras")
    said = runtime.scores(prep.apply(train.images)).argmax(1)
    assert (said == (train.labels + 1) % 7).mean() > 0.5
    assert (said == train.labels).mean() < 0.3


def test_a_teacher_file_for_other_images_is_refused_before_training(tiny_csv, fer_csv, tmp_path):
    from edgefer.data import load_fer
    from edgefer.train.teacher import write_teacher_file

    other = load_fer(fer_csv).split("Training")
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    import numpy as np

    write_teacher_file(tmp_path / "t.npz", other.images, np.eye(7)[other.labels], names, {})
    res = run("train", "--arch", "edge", "--data", tiny_csv, "--out", tmp_path / "run",
              "--teacher", tmp_path / "t.npz", "--distill", 0.5)  # fmt: skip
    assert res.exit_code != 0
    assert "t.npz: no teacher answer for 98 of 98 training images" in res.output
    assert not (tmp_path / "run").exists()


def test_teach_names_a_missing_teacher_and_writes_nothing(tiny_run, tiny_csv, tmp_path):
    out = tmp_path / "teacher.npz"
    res = run("teach", "--model", tiny_run / "model.keras", "--model", tmp_path / "gone.keras",
              "--data", tiny_csv, "--out", out)  # fmt: skip
    assert res.exit_code != 0
    assert "gone.keras: model file not found" in res.output
    assert not out.exists()
