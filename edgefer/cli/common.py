"""Options and output helpers shared by several commands."""

from __future__ import annotations

from collections import Counter

import click

from edgefer.data import FerData, load_fer

skip_bad_option = click.option(
    "--skip-bad", is_flag=True,
    help="Leave out malformed rows and unreadable images (reported) instead of stopping.")
ferplus_option = click.option(
    "--ferplus", type=click.Path(dir_okay=False),
    help="FER+ vote file (fer2013new.csv) to relabel a FER2013 CSV in its original row order.")


def load_and_report(path: str, skip_bad: bool, ferplus: str | None = None) -> FerData:
    """Load data and tell the user on stderr what was left out and why."""
    data = load_fer(path, skip_bad=skip_bad, ferplus=ferplus)
    if data.skipped:
        reasons = Counter(s.why for s in data.skipped)
        click.echo(f"skipped {len(data.skipped)} items:", err=True)
        for why, n in reasons.most_common():
            first = next(s.where for s in data.skipped if s.why == why)
            click.echo(f"  {n} x {why} (first: {first})", err=True)
    return data


def format_table(headers: list[str], rows: list[list], first_left: bool = True) -> str:
    """Plain fixed-width table: first column left-aligned, the rest right-aligned."""
    cells = [headers] + [[f"{v:,}" if isinstance(v, int) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 and first_left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join(line(r) for r in cells)
