"""Rich rendering for the terminal: a table per benchmark case, and a comparison table."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from klayers.bench.compare import KEY, Change
from klayers.bench.report import (
    CaseTable,
    case_tables,
    format_latency,
    keras_summary,
    quantization_table,
    roofline_table,
)


def case_table(table: CaseTable) -> Table:
    """Backends side by side; the fastest in bold green, failures in red, noisy in yellow."""
    rich_table = Table(title=escape(table.title), title_justify="left")
    for name in table.header:
        rich_table.add_column(name)
    for row in table.rows:
        cells = []
        for cell in row:
            text = escape("\n".join(cell.lines))
            if cell.fastest:
                text = f"[bold green]{text} *[/]"
            elif cell.failed:
                text = f"[red]{text}[/]"
            if cell.noisy:
                text += "\n[yellow]noisy[/]"
            cells.append(text)
        rich_table.add_row(*cells)
    if table.failures:
        rich_table.caption = escape("\n".join(table.failures))
        rich_table.caption_style = "red"
    return rich_table


def print_run_tables(console, records: list[dict]) -> None:
    """A run's case tables, then those farthest from their roofline, the quantized layers,
    then the ours/Keras summary, the figure to read last."""
    summary, roofline = keras_summary(records), roofline_table(records)
    last = (roofline, quantization_table(records), summary)
    for table in case_tables(records) + [table for table in last if table]:
        console.print(case_table(table))
        for note in table.notes:
            console.print(escape(note))


def compare_table(changes: list[Change], threshold: float) -> Table:
    table = Table(title=f"Median latency, new run against base (threshold {threshold:.0%})")
    for name in ("case", "measurement", "base", "new", "change", "verdict"):
        table.add_column(name)
    styles = {"slower": "red", "failed": "red", "faster": "green", "fixed": "green"}
    for change in changes:
        table.add_row(escape(str(change.key[0])), escape(_measurement(change)),
                      _latency(change.base), _latency(change.new),
                      f"{change.change:+.1%}" if change.change is not None else "-",
                      _styled(change.verdict, styles.get(change.verdict)))
    return table


def _measurement(change: Change) -> str:
    """What was measured, "base→new" for a field the two records differ in (--match)."""
    base, new = change.base or change.new, change.new or change.base
    parts = []
    for name in KEY[1:]:
        old_value, new_value = base.get(name), new.get(name)
        value = f"{old_value}" if old_value == new_value else f"{old_value}→{new_value}"
        parts.append(f"b{value}" if name == "batch_size" else value)
    return " ".join(parts)


def _styled(text: str, style: str | None) -> str:
    return f"[{style}]{text}[/]" if style else text


def _latency(record: dict | None) -> str:
    if record is None:
        return "-"
    if record.get("status") != "ok":
        return f"[red]{escape(str(record.get('status')))}[/]"
    return format_latency(record["latency_ms"])
