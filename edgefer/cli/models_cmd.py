"""`edgefer models`: the model zoo and the bundled models."""

from __future__ import annotations

import click

from edgefer.cli.common import format_table


@click.command()
def models():
    """List the model zoo: parameters, MACs and input shape."""
    from edgefer.models import ARCHS, count_macs
    from edgefer.train.config import ARCH_DEFAULTS, resolve

    rows = []
    for name, arch in ARCHS.items():
        cfg = resolve(name)
        m = arch.build(
            2 if name == "seed-binary" else 7, cfg.preprocessing.input_shape, dropout=cfg.dropout
        )
        rows.append(
            [
                name,
                m.count_params(),
                f"{count_macs(m) / 1e6:.1f}M",
                "x".join(map(str, cfg.preprocessing.input_shape)),
                ARCH_DEFAULTS[name]["task"],
                arch.summary,
            ]
        )
    click.echo(format_table(["arch", "parameters", "MACs", "input", "task", "design"], rows))
    bundled_table()


def bundled_table() -> None:
    """The bundled models' formats with the top-1 their own accuracy-drop reports measured."""
    from edgefer.bundled import DEFAULT, NAMES, bundled_path, bundled_results
    from edgefer.device.manifest import load_manifest

    rows, splits = [], set()
    for name in NAMES:
        manifest, results = load_manifest(bundled_path(name)), bundled_results(name)
        label = f"{name} (default)" if name == DEFAULT else name
        if results is None:
            rows.append([label, manifest.arch, "-", "-", "not benchmarked"])
            continue
        splits.add(f"{results['split']} top-1 on {results['count']:,} images")
        rows.extend(
            [
                label,
                manifest.arch,
                fmt,
                f"{results['size_bytes'][fmt] / 1024:.0f}",
                f"{100 * acc:.2f}",
            ]
            for fmt, acc in results["accuracy"].items()
        )
    click.echo(
        f"\nbundled models (pick one with --model NAME; {DEFAULT} when --model is not given), "
        f"{'; '.join(sorted(splits))}"
    )
    click.echo(format_table(["bundle", "arch", "format", "KiB", "top-1 %"], rows))
