"""Two cameras on one core: one daemon with both cameras, or two daemons with one camera each.

- one daemon: `edgefer daemon` with `[cameras.cam1]` on video 1 and `[cameras.cam2]` on video 2,
  one model shared by the two cameras' pipelines (device/daemon/loop.py);
- two daemons: `edgefer daemon` on video 1 and another on video 2, both running at once.

Every daemon process is pinned to one core (--core, default 0: the affinity is set before the
fork, so every thread it starts inherits it, and each thread's is checked once it runs). Video 1
is the face video the daemon benchmarks use (daemon_harness.face_video, or --video); video 2 is
its mirror image, so the two cameras read two files with different pictures at the same cost.
Each daemon: one interpreter thread, one OpenCV thread, the video looping, JSONL on (no broker),
its status server on a free loopback port. Two scenarios:

- paced (`source.pace = true`): each video at its own frame rate, as cameras deliver frames;
  FPS per camera shows whether both keep up, frames dropped what they missed, and CPU time how
  much of the core the same work takes;
- unpaced (`source.pace = false`): every frame, as fast as the daemon(s) process them; FPS per
  camera shows how the core's throughput is shared.

After --warmup seconds each arrangement is timed for --seconds: FPS per camera from each
daemon's `edgefer_frames_total{camera=...}` counter over the window; CPU time per frame from
utime + stime of the daemon process(es) (/proc/PID/stat) over the window divided by the frames;
memory at the end of the window, summed over the daemon processes: RSS (VmRSS, as Rss), PSS
(smaps_rollup: a page shared by N processes counts 1/N in each, so two daemons' shared library
pages are counted once in the sum) and, where /proc/PID/pagemap shows page frames (root), the
resident pages of the daemon(s), each page once (PSS also splits pages with processes outside
the set, such as this benchmark, which imports the same libraries). The two arrangements
alternate (the order flips every run) --runs times in each scenario, so the load on a machine
falls on both alike; the tables show medians.

    python bench/cameras_vs_daemons.py [--runs 3] [--seconds 20] [--warmup 5] [--core 0]
        [--scenarios paced,unpaced] [--video VIDEO] [--out DIR]

Writes results.json (every run) and cameras_vs_daemons.png to --out (default
bench/out/cameras_vs_daemons), keeps each arrangement's last configs and logs in its own
*/run/; prints a table; exit 2 if it cannot run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from daemon_harness import (
    FACE_VIDEO,
    DaemonProcess,
    face_video,
    free_port,
    fresh_workdir,
    get,
    machine,
)
from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

from edgefer.cli.common import format_table
from edgefer.errors import EdgeferError

CAMERAS = ("cam1", "cam2")  # the same names in both arrangements: the same metric labels
ARRANGEMENTS = ("one daemon", "two daemons")
SCENARIOS = {"paced": True, "unpaced": False}  # name -> source.pace
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def mirrored(video: Path, path: Path) -> Path:
    """`video` flipped left to right, at its frame rate and size: another picture, the same
    work."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.flip(frame, 1))
        frames += 1
    cap.release()
    writer.release()
    if not frames:
        raise EdgeferError(f"{video}: no frame could be read")
    return path


def video_info(video: Path) -> dict:
    cap = cv2.VideoCapture(str(video))
    info = {"frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), "fps": cap.get(cv2.CAP_PROP_FPS)}
    cap.release()
    return info


def write_config(workdir: Path, cameras: dict[str, Path], pace: bool, port: int) -> Path:
    """A daemon config for `cameras` (name -> video): one interpreter thread, each video
    looping, JSONL only (never rotated) and the status server on `port`. The harness's
    write_config has one camera and MQTT; this one needs no broker."""
    tables = "".join(
        f"[cameras.{name}]\nsource = {{ uri = {json.dumps(str(video))}, loop = true, "
        f"pace = {json.dumps(pace)} }}\n"
        for name, video in cameras.items()
    )
    path = workdir / "edgefer.toml"
    path.write_text(
        "threads = 1\n"
        f"{tables}"
        "[events]\nsummary_interval = 10\n"
        f"[outputs.jsonl]\npath = {json.dumps(str(workdir / 'events.jsonl'))}\n"
        "max_bytes = 1000000000\n"
        f"[server]\nport = {port}\n"
    )
    return path


@contextlib.contextmanager
def pinned(core: int):
    """This thread on `core` while a daemon is started: the child inherits the affinity at the
    fork, before any of its threads exist."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def check_pinned(daemon: DaemonProcess, core: int) -> int:
    """Every thread of the daemon on `core` only; how many threads it has."""
    tids = [int(t) for t in os.listdir(f"/proc/{daemon.proc.pid}/task")]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            if os.sched_getaffinity(tid) != {core}:
                raise EdgeferError(
                    f"thread {tid} of daemon {daemon.proc.pid} is not on core {core}"
                )
    return len(tids)


def alive(daemon: DaemonProcess) -> None:
    if daemon.proc.poll() is not None:
        raise EdgeferError(f"a daemon exited with {daemon.proc.returncode} ({daemon.log})")


def camera_counts(daemon: DaemonProcess) -> tuple[float, dict[str, float], dict[str, float]]:
    """(time read, frames processed per camera, frames dropped per camera) from /metrics."""
    alive(daemon)
    code, text = get(f"{daemon.url}/metrics")
    if code != 200:
        raise EdgeferError(f"{daemon.url}/metrics answered {code} ({daemon.log})")
    frames, dropped = {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "edgefer_frames_total":
                frames[s.labels["camera"]] = s.value
            elif s.name == "edgefer_frames_dropped":
                dropped[s.labels["camera"]] = s.value
    return time.monotonic(), frames, dropped


def memory(pid: int) -> dict[str, float]:
    """RSS (VmRSS), PSS and USS (private pages) in MiB, from /proc/PID/smaps_rollup."""
    kb = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        kb[key] = int(value.split()[0])
    return {
        "rss": kb["Rss"] / 1024,
        "pss": kb["Pss"] / 1024,
        "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024,
    }


def resident_once(pids: list[int]) -> float | None:
    """MiB of physical pages resident in any of `pids`, each page once however many map it
    (/proc/PID/pagemap); None where the page frame numbers are hidden (not root)."""
    frames = []
    for pid in pids:
        with (
            open(f"/proc/{pid}/smaps") as smaps,
            open(f"/proc/{pid}/pagemap", "rb") as pagemap,
        ):
            span = None
            for line in smaps:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping's header line
                    start, end = (int(x, 16) for x in first.split("-"))
                    span = (start, end)
                elif first == "Rss:" and span and int(line.split()[1]) > 0:
                    start, end = span
                    pagemap.seek(start // PAGE * 8)
                    entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8), np.uint64)
                    present = entries[(entries >> np.uint64(63)) == 1]
                    frames.append(present & np.uint64((1 << 55) - 1))
    pfns = np.unique(np.concatenate(frames)) if frames else np.array([], np.uint64)
    if not len(pfns) or (len(pfns) == 1 and pfns[0] == 0):
        return None
    return len(pfns) * PAGE / MIB


def core_ticks(core: int) -> tuple[int, int]:
    """(busy, all) clock ticks `core` has counted since boot (/proc/stat): what other processes
    took of it beside the daemons."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(v) for v in line.split()[1:9]]  # user .. steal (guest is in user)
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # less idle and iowait
    raise EdgeferError(f"no cpu{core} in /proc/stat")


def start(configs: list[tuple[Path, int]], workdir: Path, core: int, stack) -> list:
    daemons = []
    for i, (config, port) in enumerate(configs):
        with pinned(core):
            daemon = DaemonProcess(config, port, workdir / f"daemon{i + 1}.log")
        stack.callback(daemon.kill)
        daemons.append(daemon)
    for daemon in daemons:
        daemon.wait_ready()
    return daemons


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def leg(arrangement: str, pace: bool, videos: dict[str, Path], workdir: Path, args) -> dict:
    """One arrangement timed once: per camera FPS and frames dropped, the processes' CPU and
    memory."""
    if arrangement == "one daemon":
        groups = [videos]
    else:
        groups = [{name: video} for name, video in videos.items()]
    configs = []
    for group, port in zip(groups, free_ports(len(groups))):
        (workdir / "-".join(group)).mkdir()
        configs.append((write_config(workdir / "-".join(group), group, pace, port), port))
    with contextlib.ExitStack() as stack:
        daemons = start(configs, workdir, args.core, stack)
        threads = [check_pinned(d, args.core) for d in daemons]
        time.sleep(args.warmup)
        ticks = core_ticks(args.core)
        first = [(camera_counts(d), d.cpu_seconds()) for d in daemons]
        time.sleep(args.seconds)
        last = [(camera_counts(d), d.cpu_seconds()) for d in daemons]
        busy, total = (b - a for a, b in zip(ticks, core_ticks(args.core)))
        threads = [max(n, check_pinned(d, args.core)) for n, d in zip(threads, daemons)]
        mem = [memory(d.proc.pid) for d in daemons]
        once = resident_once([d.proc.pid for d in daemons])
        stops = [d.stop() for d in daemons]
    cameras, cpu, frames = {}, 0.0, 0.0
    window = last[0][0][0] - first[0][0][0]
    for ((t0, f0, d0), c0), ((t1, f1, d1), c1), group in zip(first, last, groups):
        for name in group:
            if name not in f1:
                raise EdgeferError(f"no edgefer_frames_total{{camera={name!r}}} in /metrics")
            n = f1[name] - f0[name]
            cameras[name] = {
                "fps": round(n / (t1 - t0), 2),
                "dropped_per_s": round((d1[name] - d0[name]) / (t1 - t0), 2),
            }
            frames += n
        cpu += c1 - c0
    if not frames:
        raise EdgeferError(f"no frame processed in {args.seconds} s ({workdir})")
    return {
        "cameras": cameras,
        "fps_total": round(sum(c["fps"] for c in cameras.values()), 2),
        "cpu_ms_per_frame": round(1000 * cpu / frames, 2),
        "core_busy_pct": round(100 * cpu / window, 1),  # the daemons', of the one core
        # everything else that ran on that core meanwhile (this benchmark, other jobs)
        "core_others_pct": round(max(0.0, 100 * busy / total - 100 * cpu / window), 1),
        "rss_mib": round(sum(m["rss"] for m in mem), 1),
        "pss_mib": round(sum(m["pss"] for m in mem), 1),
        "uss_mib": round(sum(m["uss"] for m in mem), 1),
        "resident_once_mib": None if once is None else round(once, 1),
        "per_process": [{k: round(v, 1) for k, v in m.items()} for m in mem],
        "threads": threads,
        "exit": [{"code": code, "seconds": s} for code, s in stops],
    }


def median_of(runs: list[dict]) -> dict:
    def med(values):
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 2) if values else None

    keys = ("fps_total", "cpu_ms_per_frame", "core_busy_pct", "core_others_pct")
    keys += ("rss_mib", "pss_mib", "uss_mib")
    out = {key: med(r[key] for r in runs) for key in (*keys, "resident_once_mib")}
    out["cameras"] = {
        name: {
            "fps": med(r["cameras"][name]["fps"] for r in runs),
            "fps_range": [
                min(r["cameras"][name]["fps"] for r in runs),
                max(r["cameras"][name]["fps"] for r in runs),
            ],
            "dropped_per_s": med(r["cameras"][name]["dropped_per_s"] for r in runs),
        }
        for name in CAMERAS
    }
    return out


def saving(one: dict, two: dict) -> dict:
    """What one daemon saves against two, per memory measure: MiB and % of the two's."""
    out = {}
    for key in ("rss_mib", "pss_mib", "resident_once_mib"):
        if one[key] is None or two[key] is None:
            continue
        mib = two[key] - one[key]
        out[key] = {"mib": round(mib, 1), "pct": round(100 * mib / two[key], 1)}
    return out


def bench(args) -> dict:
    if not hasattr(os, "sched_setaffinity"):
        raise EdgeferError("no os.sched_setaffinity here: the daemons cannot be pinned (Linux)")
    if args.core not in os.sched_getaffinity(0):
        raise EdgeferError(f"--core {args.core}: not among this process's CPUs")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or not set(scenarios) <= SCENARIOS.keys():
        raise EdgeferError(f"--scenarios: expected some of {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    video1 = face_video(args.out, args.video)
    videos = dict(zip(CAMERAS, (video1, mirrored(video1, args.out / "mirrored.mp4"))))
    load_before = machine()
    loads = []
    runs = {s: {a: [] for a in ARRANGEMENTS} for s in scenarios}
    legs = [
        (run, scenario, arrangement)
        for run in range(args.runs)
        for scenario in scenarios
        for arrangement in (ARRANGEMENTS if run % 2 == 0 else ARRANGEMENTS[::-1])
    ]
    for run, scenario, arrangement in tqdm(legs, desc="daemon runs"):
        workdir = fresh_workdir(args.out / f"{scenario}-{arrangement.replace(' ', '-')}")
        result = leg(arrangement, SCENARIOS[scenario], videos, workdir, args)
        result["load_avg_1m"] = round(os.getloadavg()[0], 2)
        loads.append(result["load_avg_1m"])
        runs[scenario][arrangement].append({"run": run + 1, **result})
    medians = {s: {a: median_of(runs[s][a]) for a in ARRANGEMENTS} for s in scenarios}
    return {
        "machine": {
            **load_before,
            "load_avg_1m_end": machine()["load_avg_1m"],
            "load_avg_1m_during": [min(loads), max(loads)],
            "core": args.core,
        },
        "videos": {
            "cam1": str(video1) if args.video else FACE_VIDEO,
            "cam2": "the same, mirrored left to right",
            **video_info(video1),
        },
        "warmup_s": args.warmup,
        "seconds": args.seconds,
        "runs": runs,
        "median": medians,
        "one_daemon_saves": {
            s: saving(medians[s]["one daemon"], medians[s]["two daemons"]) for s in scenarios
        },
    }


def fps_cell(camera: dict) -> str:
    low, high = camera["fps_range"]
    return f"{camera['fps']:.1f} ({low:.1f}–{high:.1f})"


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def report(r: dict) -> None:
    m = r["machine"]
    print(
        f"\n{r['videos']['frames']}-frame videos at {r['videos']['fps']:.0f} FPS, "
        f"{r['seconds']} s timed per run after {r['warmup_s']} s, every daemon on core "
        f"{m['core']} of {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']} -> "
        f"{m['load_avg_1m_end']}); medians of {len(next(iter(r['runs'].values()))['one daemon'])} "
        "runs (FPS range in brackets)"
    )
    rows = []
    for scenario, by_arrangement in r["median"].items():
        for arrangement, med in by_arrangement.items():
            cams = med["cameras"]
            rows.append(
                [
                    scenario,
                    arrangement,
                    fps_cell(cams["cam1"]),
                    fps_cell(cams["cam2"]),
                    f"{cams['cam1']['dropped_per_s']:.1f} / {cams['cam2']['dropped_per_s']:.1f}",
                    f"{med['cpu_ms_per_frame']:.2f}",
                    f"{med['core_busy_pct']:.0f}% / {med['core_others_pct']:.0f}%",
                    mib(med["rss_mib"]),
                    mib(med["pss_mib"]),
                    mib(med["resident_once_mib"]),
                ]
            )
    headers = [
        "scenario",
        "",
        "cam1 FPS",
        "cam2 FPS",
        "dropped/s",
        "CPU ms/frame",
        "core: daemons / others",
    ]
    headers += ["RSS MiB", "PSS MiB", "pages once MiB"]
    print(format_table(headers, rows))
    for scenario, saved in r["one_daemon_saves"].items():
        parts = [
            f"{label} {saved[key]['mib']:.1f} MiB ({saved[key]['pct']:.1f}%)"
            for key, label in (
                ("rss_mib", "RSS"),
                ("pss_mib", "PSS"),
                ("resident_once_mib", "pages once"),
            )
            if key in saved
        ]
        print(f"{scenario}: one daemon saves " + ", ".join(parts))


def plot(r: dict, path: Path) -> bool:
    """FPS per camera and memory, one daemon vs two, per scenario; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(r["median"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width, x = 0.2, np.arange(len(scenarios))
    bars = [(a, c) for a in ARRANGEMENTS for c in CAMERAS]
    for i, (arrangement, camera) in enumerate(bars):
        values = [r["median"][s][arrangement]["cameras"][camera]["fps"] for s in scenarios]
        axes[0].bar(x + (i - 1.5) * width, values, width, label=f"{arrangement}: {camera}")
    axes[0].set_xticks(x, scenarios)
    axes[0].set_ylabel("FPS per camera (median)")
    axes[0].legend(fontsize=8)
    keys = [("rss_mib", "RSS"), ("pss_mib", "PSS"), ("resident_once_mib", "pages once")]
    keys = [(k, label) for k, label in keys if r["median"][scenarios[0]]["one daemon"][k]]
    x = np.arange(len(keys))
    for i, arrangement in enumerate(ARRANGEMENTS):
        values = [r["median"][scenarios[0]][arrangement][k] for k, _ in keys]
        axes[1].bar(x + (i - 0.5) * 0.35, values, 0.35, label=arrangement)
    axes[1].set_xticks(x, [label for _, label in keys])
    axes[1].set_ylabel(f"MiB, all daemon processes ({scenarios[0]}, median)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    m = r["machine"]
    fig.suptitle(
        f"Two cameras on one core: one daemon or two ({m['cpu']}, load average "
        f"{m['load_avg_1m_during'][0]}–{m['load_avg_1m_during'][1]} during the runs)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="one-daemon/two-daemon pairs per scenario")
    ap.add_argument("--seconds", type=float, default=20.0, help="timed per run")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds run before timing")
    ap.add_argument("--core", type=int, default=0, help="the CPU every daemon is pinned to")
    ap.add_argument("--scenarios", default="paced,unpaced", help="paced, unpaced or both")
    ap.add_argument("--video", help="a video file (default: the moving-face video, made here)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/cameras_vs_daemons"))
    args = ap.parse_args()
    try:
        results = bench(args)
    except EdgeferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report(results)
    png = args.out / "cameras_vs_daemons.png"
    print(
        f"\n{args.out / 'results.json'}"
        + (f", {png}" if plot(results, png) else " (no plot: matplotlib is not installed)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
