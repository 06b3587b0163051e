"""`edgefer detect` and `edgefer bench`: the device runtime (no TensorFlow)."""

from __future__ import annotations

import contextlib
import json

import click

from edgefer.bundled import DEFAULT, NAMES
from edgefer.cli.common import apply_options, bundle_param, format_table
from edgefer.device.backends import PREFERENCES

PIPELINE_OPTIONS = [
    click.option(
        "--model",
        "bundle",
        metavar="BUNDLE|NAME",
        callback=bundle_param,
        help="Bundle directory made by `edgefer convert`, or a bundled model by name: "
        f"{', '.join(NAMES)} (default: {DEFAULT}).",
    ),
    click.option(
        "--detector",
        "face_detector",
        type=click.Choice(["haar", "blazeface"]),
        default="haar",
        show_default=True,
        help="Face detector: OpenCV's Haar cascade (tracked across video frames), or "
        "BlazeFace from the bundle on every frame.",
    ),
    click.option(
        "--blazeface-range",
        type=click.Choice(["short", "full"]),
        default="short",
        show_default=True,
        help="BlazeFace model: short range (faces within ~2 m) or full range (~5 m).",
    ),
    click.option(
        "--face-threshold",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=0.5,
        show_default=True,
        help="BlazeFace: smallest face confidence kept.",
    ),
    click.option(
        "--backend",
        type=click.Choice(tuple(PREFERENCES)),
        default="cpu",
        show_default=True,
        help="cpu = TFLite + XNNPACK; edgetpu/gpu/external = TFLite delegate; onnx = ONNX Runtime.",
    ),
    click.option("--format", "fmt", help="Force a bundle artifact (e.g. tflite-fp32)."),
    click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True),
    click.option(
        "--delegate-library",
        help="Delegate shared library (gpu/external, or a non-default libedgetpu).",
    ),
    click.option(
        "--delegate-option",
        multiple=True,
        help="key=value for the delegate, e.g. device=usb:0.",
    ),
    click.option(
        "--fallback",
        type=click.Choice(["cpu"]),
        help="Run on the CPU if the delegate cannot load.",
    ),
    click.option("--providers", help="ONNX Runtime execution providers, comma-separated."),
    click.option(
        "--cascade",
        type=click.Path(dir_okay=False),
        help="Haar cascade XML (default: OpenCV's frontal face).",
    ),
    click.option(
        "--scale-factor",
        type=click.FloatRange(min=1, min_open=True),
        default=1.1,
        show_default=True,
        help="Step between the face sizes searched (> 1).",
    ),
    click.option("--min-neighbors", type=click.IntRange(min=0), default=5, show_default=True),
    click.option(
        "--min-size",
        type=click.IntRange(min=1),
        default=48,
        show_default=True,
        help="Smallest face, pixels.",
    ),
    click.option(
        "--max-size",
        type=click.IntRange(min=0),
        default=0,
        help="Largest face, pixels (0 = no limit).",
    ),
    click.option("--largest", is_flag=True, help="Only the largest face of each frame."),
    click.option(
        "--naive", is_flag=True, help="Full-frame detection on every frame (slow reference)."
    ),
    click.option(
        "--full-every",
        type=click.IntRange(1),
        default=15,
        show_default=True,
        help="Frames between full scans when tracking.",
    ),
    click.option(
        "--downscale",
        type=click.FloatRange(0.1, 1.0),
        default=0.5,
        show_default=True,
        help="Scale of the frame for full scans when tracking; raised where a face of "
        "--min-size would fall below the cascade's window (24 px for the default).",
    ),
    click.option(
        "--margin",
        type=click.FloatRange(0, 1),
        default=0.0,
        show_default=True,
        help="Grow each face box by this share per side before cropping.",
    ),
]
pipeline_options = apply_options(PIPELINE_OPTIONS)


def build_pipeline(
    bundle,
    face_detector,
    blazeface_range,
    face_threshold,
    backend,
    fmt,
    threads,
    delegate_library,
    delegate_option,
    fallback,
    providers,
    cascade,
    scale_factor,
    min_neighbors,
    min_size,
    max_size,
    largest,
    naive,
    full_every,
    downscale,
    margin,
    video: bool,
):
    from edgefer.device.delegates import DelegateSpec, parse_options
    from edgefer.device.detector import HaarConfig, TrackingConfig
    from edgefer.device.pipeline import BlazeFaceConfig, Pipeline

    delegate = None
    if backend in ("edgetpu", "gpu", "external"):
        delegate = DelegateSpec(backend, delegate_library, parse_options(delegate_option))
    haar = HaarConfig(cascade, scale_factor, min_neighbors, min_size, max_size, largest)
    # Tracking only helps across consecutive frames of a video or camera.
    tracking = None if naive or not video else TrackingConfig(downscale, full_every)
    return Pipeline.from_bundle(
        bundle,
        backend,
        threads,
        delegate,
        fallback,
        fmt,
        haar,
        tracking,
        margin,
        providers.split(",") if providers else None,
        BlazeFaceConfig(blazeface_range, face_threshold) if face_detector == "blazeface" else None,
    )


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
def detect(source, frames, save, as_json, **opts):
    """Detect faces and read their expressions, frame by frame."""
    from edgefer.device.pipeline import frames_with_results
    from edgefer.device.saver import Saver, save_target
    from edgefer.device.sources import VIDEO_KINDS, open_source, source_kind

    kind = source_kind(source)
    target = save_target(save, kind)
    pipe = build_pipeline(**opts, video=kind in VIDEO_KINDS)
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
def bench(source, frames, as_json, **opts):
    """How fast is the device pipeline here? Per-stage latency (p50/p95/p99/max) and FPS.

    Plus model-only latency per backend on this machine. (Accuracy per format: `edgefer
    benchmark`.)"""
    from edgefer.device.latency import bench_pipeline
    from edgefer.device.sources import VIDEO_KINDS, source_kind
    from edgefer.device.stats import STAGES

    pipe = build_pipeline(**opts, video=source_kind(source) in VIDEO_KINDS)
    summary = bench_pipeline(pipe, source, frames, opts["bundle"], opts["threads"])
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
