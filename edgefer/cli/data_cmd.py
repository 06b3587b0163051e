"""`edgefer data`: look at FER data sets."""

from __future__ import annotations

import json

import click

from edgefer.cli.common import ferplus_option, format_table, load_and_report, skip_bad_option
from edgefer.labels import FER7


@click.group()
def data():
    """Inspect FER data (Kaggle CSV, image folders, FER+)."""


@data.command("info")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@skip_bad_option
@ferplus_option
def info(path, as_json, skip_bad, ferplus):
    """Counts per class and split of the data at PATH."""
    ds = load_and_report(path, skip_bad, ferplus)
    counts = ds.counts()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "source": ds.source,
                    "total": len(ds),
                    "splits": {
                        s: {"total": sum(c.values()), "classes": c} for s, c in counts.items()
                    },
                    "skipped": [{"where": s.where, "why": s.why} for s in ds.skipped],
                },
                indent=2,
            )
        )
        return
    rows = [[split, sum(c.values()), *c.values()] for split, c in counts.items()]
    if len(rows) > 1:
        rows.append(["all", len(ds), *[sum(c[k] for c in counts.values()) for k in FER7]])
    click.echo(f"{ds.source}: {len(ds):,} images, {len(counts)} split(s)")
    click.echo(format_table(["split", "total", *FER7], rows))
