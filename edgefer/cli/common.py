"""Options and output helpers shared by several commands."""

from __future__ import annotations

from collections import Counter

import click

from edgefer.data import FerData, load_fer

skip_bad_option = click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave out malformed rows and unreadable images (reported) instead of stopping.",
)
ferplus_option = click.option(
    "--ferplus",
    type=click.Path(dir_okay=False),
    help="FER+ vote file (fer2013new.csv) to relabel a FER2013 CSV in its original row order.",
)


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


def _numeric(cell: str) -> bool:
    return (
        cell.replace(",", "").replace(".", "").replace("%", "").lstrip("-+").rstrip("Mkx").isdigit()
    )


def format_table(headers: list[str], rows: list[list]) -> str:
    """Plain fixed-width table: numeric columns right-aligned, text columns left-aligned."""
    body = [[f"{v:,}" if isinstance(v, int) else str(v) for v in r] for r in rows]
    cells = [list(headers)] + body
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = [bool(body) and all(_numeric(r[i]) for r in body) for i in range(len(headers))]

    def line(r):
        return "  ".join(
            c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()

    return "\n".join(line(r) for r in cells)


def bundle_param(ctx, param, value):
    """Click callback: a bundle directory or a bundled model's name (None: the default). Resolved
    before any check on the path, so a file named like a bundled model cannot shadow the name."""
    from edgefer.bundled import NAMES, resolve_bundle

    path = resolve_bundle(value)
    if path.is_file():
        raise click.BadParameter(
            f"{value}: a file; expected a bundle directory or one of {', '.join(NAMES)}"
        )
    return path


def comma_list(value: str) -> list[str]:
    """A comma-separated option's items, stripped, empty ones left out."""
    return [v.strip() for v in value.split(",") if v.strip()]


def apply_options(options):
    """Decorate a command with a list of click options, in the list's order."""

    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco
