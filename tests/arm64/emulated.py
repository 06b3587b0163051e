"""The emulated-Pi check, shared by the pytest test (test_pi_emulated.py) and the command line
(`python -m tests.arm64`): build the inputs and the x86 reference here, install the base runtime
on the emulated Pi from an offline wheelhouse, run the same check there under each Pi core, and
compare, item by item, with the x86 run — never just "it ran".

Not a benchmark: emulated speed means nothing, only the numbers are compared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgefer.deploy.wheelhouse import build_wheelhouse, platform_tags
from tests import known_answer
from tests.arm64.pi_root import CPUS, VENV, PiRoot
from tests.harness import locked
from tests.test_known_answer import TOLERANCE as KNOWN_TOLERANCE

PI_PYTHON, PI_GLIBC = "3.11", (2, 36)
CHECK = Path(__file__).with_name("check.py")

# Largest score difference from the x86 run on the same input. Float formats differ only in float
# rounding (other SIMD reductions, fused multiply-add on arm64). The one-layer known-answer int8
# model must agree exactly (bound: half an output step of 1/256). The bundled model, 22 int8 ops
# (14 convolutions) deep, may move one output step: XNNPACK requantizes with other rounding on
# arm64 than on x86, and a one-step difference in an inner layer can reach the output (measured:
# 1 of 700 scores, the same on cortex-a72 and cortex-a76, which run different kernels, and under
# qemu 7.2 and 10); its labels must still all agree.
STEP = 1 / 256
VS_X86 = {
    "tflite-fp32": 1e-5,
    "tflite-fp16": 1e-4,
    "tflite-dynamic": 1e-4,
    "tflite-int8": STEP / 2,
    "bundled": STEP + 1e-6,
}
# Largest distance (pixels) of a face box's corner from x86's: Haar is integer arithmetic and
# must agree exactly; BlazeFace regresses boxes in float, so a box may round one pixel apart.
BOX_PX = {"haar": 0, "blazeface": 1}
DETECT = {
    # --model on a copy of the bundled bundle: click checks the path on the device (see the
    # faccessat2 note in pi_root.py).
    "haar": ["--model", "{work}/edge", "--detector", "haar"],
    "blazeface": ["--detector", "blazeface", "--blazeface-range", "full"],
}


@dataclass
class Check:
    cpu: str
    group: str  # platform, known, frames, bundled, detect-haar, detect-blazeface
    name: str
    ok: bool
    detail: str


@dataclass
class Results:
    checks: list[Check] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    x86: dict = field(default_factory=dict)
    pi: dict = field(default_factory=dict)  # cpu -> check.py result, with "detect"
    inputs: dict = field(default_factory=dict)  # the known-answer images and their labels

    def failed(self, cpu: str | None = None, group: str | None = None) -> list[Check]:
        return [
            c
            for c in self.checks
            if not c.ok and (cpu is None or c.cpu == cpu) and (group is None or c.group == group)
        ]


# -- inputs -------------------------------------------------------------------------------


def group_photo() -> np.ndarray:
    """960x540 BGR: the astronaut twice (once mirrored) and six LFW faces, 130 px, over the
    coffee photo (scikit-image's own images): seven or eight faces with different expressions."""
    from skimage import data

    canvas = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (960, 540))
    head = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[10:250, 120:340]
    for x, y, s, flip in [(30, 40, 0.9, False), (730, 250, 0.95, True)]:
        h = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        canvas[y : y + h.shape[0], x : x + h.shape[1]] = h[:, ::-1] if flip else h
    lfw = data.lfw_subset()
    for i, k in enumerate([0, 7, 13, 21, 42, 55]):
        gray = np.round(lfw[k] * 255).astype(np.uint8)
        face = cv2.resize(gray, (130, 130), interpolation=cv2.INTER_CUBIC)
        x, y = 260 + (i % 3) * 150, 40 + (i // 3) * 250
        canvas[y : y + 130, x : x + 130] = face[..., None]
    return canvas


def make_inputs(work: Path, known_bundle: Path) -> Path:
    """Everything check.py and `edgefer detect` read, in `work`."""
    from edgefer.bundled import default_bundle
    from edgefer.samples import lfw_faces

    work.mkdir(parents=True, exist_ok=True)
    for src, name in [(known_bundle, "known"), (default_bundle(), "edge")]:
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(src, work / name)
    images, labels = known_answer.dataset()
    frames = [known_answer.colour_frame(known_answer.class_image(k)) for k in range(7)]
    np.savez(
        work / "inputs.npz",
        images=images,
        labels=labels,
        frames=np.stack(frames),
        frame_labels=np.arange(7),
        box=np.array(known_answer.BOX),
        faces=lfw_faces(),
    )
    cv2.imwrite(str(work / "group.png"), group_photo())
    shutil.copy(CHECK, work / "check.py")
    return work


# -- runs ---------------------------------------------------------------------------------


def _detect_args(work: Path, case: str) -> list[str]:
    opts = [a.format(work=work) for a in DETECT[case]]
    return ["detect", "--source", str(work / "group.png"), "--json", *opts]


def _parse_detect(stdout: str) -> list[dict]:
    (line,) = [s for s in stdout.splitlines() if s.startswith("{")]
    frame = json.loads(line)
    if "error" in frame:
        raise AssertionError(f"edgefer detect skipped the photo: {frame['error']}")
    return frame["faces"]


def run_x86(work: Path) -> dict:
    """The reference: check.py and `edgefer detect` with this machine's edgefer."""
    subprocess.run(
        [sys.executable, str(work / "check.py"), str(work), str(work / "x86.json")], check=True
    )
    ref = json.loads((work / "x86.json").read_text())
    ref["detect"] = {}
    for case in DETECT:
        proc = subprocess.run(
            [sys.executable, "-m", "edgefer", *_detect_args(work, case)],
            capture_output=True,
            text=True,
            check=True,
        )
        ref["detect"][case] = _parse_detect(proc.stdout)
    return ref


def run_pi(pi: PiRoot, work: Path, cpu: str) -> dict:
    out = work / f"{cpu}.json"
    out.unlink(missing_ok=True)
    pi.guest(
        [f"{VENV}/bin/python", str(work / "check.py"), str(work), str(out)],
        cpu,
        binds=[work],
        what=f"check.py under {cpu}",
    )
    got = json.loads(out.read_text())
    got["detect"] = {}
    for case in DETECT:
        proc = pi.guest(
            [f"{VENV}/bin/edgefer", *_detect_args(work, case)],
            cpu,
            binds=[work],
            what=f"edgefer detect ({case}) under {cpu}",
        )
        got["detect"][case] = _parse_detect(proc.stdout)
    return got


# -- comparison ---------------------------------------------------------------------------


def _scores(a, a_labels, b, b_labels, tol) -> tuple[bool, str]:
    """Same label names (argmax, each side read with its own manifest's labels) and scores of
    the same label within tol: (ok, detail). A Pi whose manifest or model has its labels in
    another order fails here even where the raw score columns agree."""
    if sorted(a_labels) != sorted(b_labels):
        return False, f"labels {a_labels} vs x86 {b_labels}"
    a = np.asarray(a, np.float64)[:, [a_labels.index(c) for c in b_labels]]  # x86's order
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False, f"shapes {a.shape} vs x86 {b.shape}"
    named_a, named_b = np.array(b_labels)[a.argmax(1)], np.array(b_labels)[b.argmax(1)]
    same = int((named_a == named_b).sum())
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    ok = same == len(a) and diff <= tol
    identical = int((a == b).sum())
    detail = (
        f"labels {same}/{len(a)} as x86, {identical}/{a.size} scores identical, max score diff "
        f"{diff:.2e} (allowed {tol:.1e})"
    )
    if same < len(a):
        i = int(np.flatnonzero(named_a != named_b)[0])
        detail += f"; first differing: #{i} {named_a[i]} vs x86 {named_b[i]}"
    return ok, detail


def compare(x86: dict, pi: dict, cpu: str, inputs: dict) -> list[Check]:
    """Every comparison of one emulated run with the x86 reference."""
    checks: list[Check] = []

    def add(group, name, ok, detail):
        checks.append(Check(cpu, group, name, bool(ok), detail))

    want_cpu = CPUS[cpu]
    add("platform", "arm64", pi["machine"] == "aarch64", f"machine {pi['machine']}")
    add("platform", "python", pi["python"].startswith(PI_PYTHON + "."), f"Python {pi['python']}")
    glibc = ["glibc", ".".join(map(str, PI_GLIBC))]
    add("platform", "glibc", pi["libc"] == glibc, f"C library {' '.join(pi['libc'])}")
    add(
        "platform",
        "cpu",
        set(pi["features"] or ()) == set(want_cpu.features),
        f"{want_cpu.board} ({cpu}) features {' '.join(pi['features'] or [])}",
    )
    add(
        "platform",
        "pip tags",
        pi["pip_tags"] == platform_tags("aarch64", PI_GLIBC),
        "the Pi's pip accepts exactly the tags the wheelhouse asked for"
        if pi["pip_tags"] == platform_tags("aarch64", PI_GLIBC)
        else f"the Pi's pip accepts {pi['pip_tags'][:3]}...",
    )

    # Every format of the known-answer bundle the base install can run: all TFLite ones.
    known_x, known_p = x86["known"], pi["known"]
    tflite = sorted(f for f in known_x["scores"] if f.startswith("tflite"))
    ran = sorted(known_p["scores"])
    add("known", "formats", ran == tflite, f"ran {', '.join(ran)}; skipped {known_p['skipped']}")
    labels = known_p["labels"]
    expected = known_answer.expected_scores(inputs["images"])
    for fmt in tflite:
        if fmt not in known_p["scores"]:
            continue
        ok, detail = _scores(
            known_p["scores"][fmt], labels, known_x["scores"][fmt], known_x["labels"], VS_X86[fmt]
        )
        right = (np.asarray(known_p["scores"][fmt]).argmax(1) == inputs["labels"]).all()
        known_err = float(np.abs(np.asarray(known_p["scores"][fmt]) - expected).max())
        add(
            "known",
            fmt,
            ok and right and known_err <= KNOWN_TOLERANCE[fmt],
            f"{detail}; known answer: labels right {bool(right)}, max error {known_err:.2e} "
            f"(allowed {KNOWN_TOLERANCE[fmt]:.1e})",
        )
        px, pp = known_x["frames"][fmt], known_p["frames"][fmt]
        frame_ok = len(pp) == len(px) and all(
            len(a) == len(b) == 1
            and a[0][0] == b[0][0] == labels[k]
            and np.abs(np.subtract(a[0][1], b[0][1])).max() <= VS_X86[fmt]
            for k, (a, b) in enumerate(zip(pp, px))
        )
        add(
            "frames",
            fmt,
            frame_ok,
            f"{len(pp)} colour frames: label and scores as x86 and as drawn"
            if frame_ok
            else f"colour frames differ: {pp} vs x86 {px}",
        )

    bx, bp = x86["bundled"], pi["bundled"]
    ok, detail = _scores(bp["scores"], bp["labels"], bx["scores"], bx["labels"], VS_X86["bundled"])
    add(
        "bundled",
        bp["format"],
        ok and bp["format"] == bx["format"],
        f"{len(bp['scores'])} LFW faces, {bp['format']} (x86: {bx['format']}): {detail}",
    )

    for case, faces_x in x86["detect"].items():
        faces_p = pi["detect"][case]
        group = f"detect-{case}"
        add(
            group,
            "faces",
            len(faces_p) == len(faces_x),
            f"{len(faces_p)} faces (x86: {len(faces_x)})",
        )
        if len(faces_p) != len(faces_x):
            continue
        # Matched by position: the nearest x86 box for each.
        worst_px, worst_score, labels_same = 0, 0.0, 0
        for f in faces_p:
            g = min(faces_x, key=lambda g: np.abs(np.subtract(f["box"], g["box"])).sum())
            worst_px = max(worst_px, int(np.abs(np.subtract(f["box"], g["box"])).max()))
            labels_same += f["label"] == g["label"]
            worst_score = max(
                worst_score, max(abs(f["scores"][c] - g["scores"][c]) for c in g["scores"])
            )
        # detect --json rounds scores to 4 decimals.
        tol = VS_X86["bundled"] + 1e-4
        add(
            group,
            "boxes",
            worst_px <= BOX_PX[case],
            f"largest box difference {worst_px} px (allowed {BOX_PX[case]})",
        )
        add(
            group,
            "labels",
            labels_same == len(faces_p) and worst_score <= tol,
            f"labels {labels_same}/{len(faces_p)} as x86, max score diff {worst_score:.4f} "
            f"(allowed {tol:.4f})",
        )
    return checks


# -- all of it ----------------------------------------------------------------------------


def run_all(
    work: Path, known_bundle: Path, cpus=tuple(CPUS), log=print, pi: PiRoot | None = None
) -> Results:
    pi = pi or PiRoot(log=log)
    with locked(pi.cache):
        return _run_all(work, known_bundle, cpus, log, pi)


def _run_all(work: Path, known_bundle: Path, cpus, log, pi: PiRoot) -> Results:
    res = Results()
    t_all = time.monotonic()

    t0 = time.monotonic()
    pi.ensure()
    res.timings["rootfs"] = time.monotonic() - t0
    res.notes.append("rootfs " + ("built" if "rootfs" in pi.timings else "from the cache"))

    t0 = time.monotonic()
    house = pi.cache / "wheelhouse"
    shutil.rmtree(house, ignore_errors=True)
    wheels = build_wheelhouse(
        dest=house, arch="aarch64", python=PI_PYTHON, glibc=PI_GLIBC, progress=log
    )
    res.timings["wheelhouse"] = time.monotonic() - t0
    size = sum(w.stat().st_size for w in wheels) / 1e6
    res.notes.append(
        f"wheelhouse: {len(wheels)} wheels, {size:.0f} MB: "
        + ", ".join(w.name.split("-")[0] + " " + w.name.split("-")[1] for w in wheels)
    )

    t0 = time.monotonic()
    res.notes.append(pi.install(wheels))
    res.timings["install"] = time.monotonic() - t0

    t0 = time.monotonic()
    make_inputs(work, known_bundle)
    res.x86 = run_x86(work)
    res.timings["x86 reference"] = time.monotonic() - t0
    with np.load(work / "inputs.npz") as npz:
        inputs = res.inputs = {k: npz[k] for k in ("images", "labels")}

    for cpu in cpus:
        t0 = time.monotonic()
        log(f"running the check on the emulated {CPUS[cpu].board} ({cpu})")
        res.pi[cpu] = run_pi(pi, work, cpu)
        res.timings[cpu] = time.monotonic() - t0
        res.checks += compare(res.x86, res.pi[cpu], cpu, inputs)
    res.timings["total"] = time.monotonic() - t_all
    (pi.cache / "last-run.txt").write_text(summary(res) + "\n")
    return res


def summary(res: Results) -> str:
    """The report: notes, one line per check, the wall time of each step."""
    lines = [*res.notes]
    lines += [
        f"{'ok  ' if c.ok else 'FAIL'} {c.cpu:10} {c.group:16} {c.name:14} {c.detail}"
        for c in res.checks
    ]
    lines.append("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in res.timings.items()))
    return "\n".join(lines)
