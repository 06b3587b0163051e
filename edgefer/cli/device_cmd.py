"""`edgefer detect` and `edgefer bench`: the device runtime (no TensorFlow)."""

from __future__ import annotations

import contextlib
import json
from functools import reduce
from operator import getitem

import click
from pydantic import ValidationError

from edgefer.bundled import DEFAULT, NAMES
from edgefer.cli.common import apply_options, bundle_param, comma_list, format_table
from edgefer.device.backends import PREFERENCES
from edgefer.device.delegates import parse_options
from edgefer.device.detectors import DETECTORS
from edgefer.device.pipeline_config import AUTO, PipelineConfig
from edgefer.errors import EdgeferError, dotted, validation_line

# The flags that set a PipelineConfig key, by click parameter name: the config is built from them
# and checked as the daemon's config is, so its defaults and checks are the only ones.
CONFIG_KEYS: dict[str, tuple[str, ...]] = {}
DEFAULTS = PipelineConfig().model_dump()


def config_option(flag: str, key: tuple[str, ...], help: str, **kwargs):
    """An option for the config key `key`; left out of the config unless given. Values go to
    the config as typed (pydantic converts them), so `--min-size x` and `min_size = "x"` are
    refused alike."""
    CONFIG_KEYS[flag.lstrip("-").replace("-", "_")] = key
    default = reduce(getitem, key, DEFAULTS)
    shown = f"  [default: {default}]" if default not in (None, False, {}) else ""
    return click.option(flag, default=None, help=help + shown, **kwargs)


def detector_help() -> str:
    kinds = "; ".join(
        f"{k}: {entry.build.__doc__.splitlines()[0].rstrip('.')}" for k, entry in DETECTORS.items()
    )
    return (
        "Face detector: auto (the one whose options are given; if none, blazeface-track where "
        f"the bundle has BlazeFace, else haar); {kinds}."
    )


PIPELINE_OPTIONS = [
    click.option(
        "--model",
        "bundle",
        metavar="BUNDLE|NAME",
        callback=bundle_param,
        help="Bundle directory made by `edgefer convert`, or a bundled model by name: "
        f"{', '.join(NAMES)} (default: {DEFAULT}).",
    ),
    config_option(
        "--detector", ("detector", "kind"), detector_help(), metavar="|".join([AUTO, *DETECTORS])
    ),
    config_option(
        "--blazeface-range",
        ("detector", "blazeface_range"),
        "BlazeFace model: short range (faces within ~2 m) or full range (~5 m).",
        metavar="short|full",
    ),
    config_option(
        "--face-threshold",
        ("detector", "threshold"),
        "BlazeFace: smallest face confidence kept, in (0, 1).",
        metavar="NUMBER",
    ),
    config_option(
        "--backend",
        ("backend",),
        "cpu = TFLite + XNNPACK; edgetpu/gpu/external = TFLite delegate; onnx = ONNX Runtime.",
        metavar="|".join(PREFERENCES),
    ),
    config_option(
        "--format", ("format",), "Force a bundle artifact (e.g. tflite-fp32).", metavar="FORMAT"
    ),
    config_option("--threads", ("threads",), "Interpreter threads, 1 to 64.", metavar="N"),
    config_option(
        "--delegate-library",
        ("delegate", "library"),
        "Delegate shared library (gpu/external, or a non-default libedgetpu).",
        metavar="PATH",
    ),
    config_option(
        "--delegate-option",
        ("delegate", "options"),
        "key=value for the delegate, e.g. device=usb:0.",
        multiple=True,
        metavar="KEY=VALUE",
    ),
    config_option(
        "--fallback",
        ("fallback",),
        "Run on the CPU if the delegate cannot load (the one value: cpu).",
        metavar="cpu",
    ),
    config_option(
        "--providers",
        ("providers",),
        "ONNX Runtime execution providers, comma-separated.",
        metavar="NAME,...",
    ),
    config_option(
        "--cascade",
        ("detector", "cascade"),
        "Haar cascade XML (default: OpenCV's frontal face).",
        metavar="PATH",
    ),
    config_option(
        "--scale-factor",
        ("detector", "scale_factor"),
        "Step between the face sizes searched (> 1).",
        metavar="NUMBER",
    ),
    config_option(
        "--min-neighbors",
        ("detector", "min_neighbors"),
        "Neighbouring hits a face needs (0 or more).",
        metavar="N",
    ),
    config_option(
        "--min-size", ("detector", "min_size"), "Smallest face, pixels.", metavar="PIXELS"
    ),
    config_option(
        "--max-size",
        ("detector", "max_size"),
        "Largest face, pixels (0 = no limit).",
        metavar="PIXELS",
    ),
    config_option(
        "--largest",
        ("detector", "largest_only"),
        "Only the largest face of each frame.",
        is_flag=True,
    ),
    click.option(
        "--naive",
        is_flag=True,
        help="Haar on every full frame, no ROI search (the slow reference).",
    ),
    config_option(
        "--full-every",
        ("detector", "roi_search", "full_every"),
        "Frames between full scans when searching around known faces.",
        metavar="N",
    ),
    config_option(
        "--downscale",
        ("detector", "roi_search", "downscale"),
        "Scale of the frame for full scans, in (0, 1]; raised where a face of --min-size "
        "would fall below the cascade's window (24 px for the default).",
        metavar="NUMBER",
    ),
    config_option(
        "--margin",
        ("margin",),
        "Grow each face box by this share per side before cropping, 0 to 1.",
        metavar="NUMBER",
    ),
    config_option(
        "--expression-every",
        ("expression_every",),
        "Read each followed face's expression every N frames of a video or camera (a new face "
        "at once, the scores carried in between); every image is read.",
        metavar="N",
    ),
]
pipeline_options = apply_options(PIPELINE_OPTIONS)
FLAGS = {key: "--" + param.replace("_", "-") for param, key in CONFIG_KEYS.items()}


def flag_of(loc: tuple) -> str:
    """The flag that set the key at `loc` (every key a user can set has one)."""
    return FLAGS.get(tuple(loc), dotted(loc))


def pipeline_config(flags: dict, video: bool) -> PipelineConfig:
    """The PipelineConfig the flags ask for; a bad value is one line naming the flag. The ROI
    search needs consecutive frames: it is on for a video or camera, unless --naive. (Trackers
    and --expression-every start afresh on each image: `frames_with_results`.)"""
    data: dict = {"detector": {"roi_search": {"enabled": video and not flags["naive"]}}}
    if flags["naive"]:
        data["detector"]["kind"] = "haar"  # the slow reference, unless --detector says another
    for param, key in CONFIG_KEYS.items():
        value = flags[param]
        if value is None or value is False or value == ():  # not given: the config's default
            continue
        if param == "delegate_option":
            value = parse_options(value)
        elif param == "providers":
            value = comma_list(value)
        node = data
        for k in key[:-1]:
            node = node.setdefault(k, {})
        node[key[-1]] = value
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise EdgeferError(validation_line(exc, "option", flag_of)) from None


@click.command()
@pipeline_options
@click.option("--source", required=True, help="IMAGE, DIR, VIDEO, CAMERA_INDEX or URL.")
@click.option("--frames", type=click.IntRange(1), help="Stop after N frames.")
@click.option(
    "--save",
    type=click.Path(dir_okay=False),
    help="Write boxes and labels: out.png|jpg|bmp for an image, out.mp4|avi for a "
    "video, camera or folder (at the source's frame rate). Faces are personal "
    "data: nothing is stored without this flag.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame.")
def detect(bundle, source, frames, save, as_json, **flags):
    """Detect faces and read their expressions, frame by frame."""
    from edgefer.device.pipeline import Pipeline, frames_with_results
    from edgefer.device.saver import Saver, save_target
    from edgefer.device.sources import VIDEO_KINDS, open_source, source_kind

    kind = source_kind(source)
    target = save_target(save, kind)
    pipe = Pipeline.from_bundle(bundle, pipeline_config(flags, video=kind in VIDEO_KINDS))
    src = open_source(source, frames)
    with contextlib.ExitStack() as stack:
        saver = Saver(target, src.fps, stack)
        for frame, result in frames_with_results(pipe, src):
            if result is None or result.error:
                err = frame.error if result is None else result.error
                click.echo(
                    json.dumps({"frame": frame.name, "error": err})
                    if as_json
                    else f"{frame.name}: skipped ({err})"
                )
                continue
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "frame": frame.name,
                            "faces": [d.to_dict() for d in result.detections],
                            "ms": {k: round(v, 2) for k, v in result.timings.items()},
                        }
                    )
                )
            else:
                faces = "; ".join(f"{d.label} {d.score:.2f} at {d.box}" for d in result.detections)
                click.echo(f"{frame.name}: {faces or 'no face'} ({result.timings['total']:.1f} ms)")
            saver.add(frame.image, result.detections)


@click.command("bench")
@pipeline_options
@click.option("--source", required=True, help="IMAGE, DIR, VIDEO, CAMERA_INDEX or URL.")
@click.option("--frames", type=click.IntRange(1), default=300, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench(bundle, source, frames, as_json, **flags):
    """How fast is the device pipeline here? Per-stage latency (p50/p95/p99/max) and FPS.

    Plus model-only latency per backend on this machine. (Accuracy per format: `edgefer
    benchmark`.)"""
    from edgefer.device.latency import bench_pipeline
    from edgefer.device.pipeline import Pipeline
    from edgefer.device.sources import VIDEO_KINDS, source_kind
    from edgefer.device.stats import STAGES

    config = pipeline_config(flags, video=source_kind(source) in VIDEO_KINDS)
    pipe = Pipeline.from_bundle(bundle, config)
    summary = bench_pipeline(pipe, source, frames, bundle, config.threads)
    faces = summary["faces"]
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"{source}: {summary['frames']} frames, {faces} faces, {summary['fps']:.1f} FPS end to end"
    )
    click.echo(
        format_table(
            ["stage", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            [
                [s, *(f"{summary['stages'][s][k]:.2f}" for k in ("p50", "p95", "p99", "max"))]
                for s in STAGES
                if s in summary["stages"]
            ],
        )
    )
    click.echo("\nmodel only (batch 1)")
    click.echo(
        format_table(
            ["backend", "format", "p50 ms", "p95 ms", "note"],
            [
                [
                    m["backend"],
                    m.get("format", "-"),
                    *(f"{m[k]:.2f}" if k in m else "-" for k in ("p50_ms", "p95_ms")),
                    m.get("note", ""),
                ]
                for m in summary["models"]
            ],
        )
    )
