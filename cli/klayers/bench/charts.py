"""The charts of a benchmark report, readable at 200+ cases and across machines.

- family_ratios.png: ours over each baseline per layer family, the geometric mean of its
  cases' ratios: the view at a glance.
- ratio_heatmap.png: ours over each baseline, a row per case (and dtype, batch size), a
  column per backend, mode and baseline; a log colour scale centred on 1 (green: ours faster,
  red: slower), the ratio written in each cell, and the cells below target outlined.
- throughput.png: our layers' throughput per backend on a log axis, a row per case, predict
  and train side by side.

Rows take a fixed height (ROW_INCHES), so a chart grows with its cases and no more; nothing
else takes room. Charts without data are not drawn.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from klayers.bench.results import Row, rows_by_case
from klayers.process import write_atomic

HEATMAP = "ratio_heatmap.png"
FAMILIES = "family_ratios.png"
THROUGHPUT = "throughput.png"
ROW_INCHES = 0.2
DPI = 100
RATIO_RANGE = 4.0  # the colour scale's ends: 1/4x and 4x (beyond: the ends' colours)
MODES = ("predict", "train")
BASELINES = ("keras", "native")


def write_charts(output: Path, records: list[dict[str, Any]], backends: list[str],
                 families: dict[str, str], target: float) -> list[str]:
    """The charts that have data, written atomically to `output`; returns their file names.

    `families` maps a layer name to its family (others count as "other"); `target` is the
    ratio below which a cell is outlined.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to import
    from matplotlib import pyplot

    lines = _lines(records)
    columns = [(backend, mode, baseline) for baseline in BASELINES for backend in backends
               for mode in MODES
               if any(line.ratio(backend, mode, baseline) for line in lines)]
    written = []
    if columns:
        lines_with_ratios = [line for line in lines
                             if any(line.ratio(*column) for column in columns)]
        ordered = sorted(lines_with_ratios,
                         key=lambda line: (families.get(line.layer, "other"), line.label))
        labels = [line.label for line in ordered]
        values = [[line.ratio(*column) for column in columns] for line in ordered]
        heatmap = _heatmap(pyplot, labels, columns, values, target,
                           "Ours over the baseline, same backend (times faster)")
        by_family: dict[str, list[_Line]] = {}
        for line in lines_with_ratios:
            by_family.setdefault(families.get(line.layer, "other"), []).append(line)
        names = sorted(by_family)
        family_values = [[_geometric_mean([line.ratio(*column) for line in by_family[name]])
                          for column in columns] for name in names]
        labels = [f"{name} ({len(by_family[name])})" for name in names]
        figure = _heatmap(pyplot, labels, columns, family_values, target,
                          "Per family: geometric mean of ours over the baseline (cases)")
        # The view at a glance first, then every case.
        written.append(_save(figure, pyplot, output / FAMILIES))
        written.append(_save(heatmap, pyplot, output / HEATMAP))
    if any(line.throughput(backend, mode) for line in lines for backend in backends
           for mode in MODES):
        figure = _throughput_chart(pyplot, lines, backends)
        written.append(_save(figure, pyplot, output / THROUGHPUT))
    return written


class _Line:
    """A case at one device, dtype and batch size: its rows by mode."""

    def __init__(self, layer: str, label: str) -> None:
        self.layer = layer
        self.label = label
        self.rows: dict[str, Row] = {}

    def ratio(self, backend: str, mode: str, baseline: str) -> float | None:
        row = self.rows.get(mode)
        ratio = row.baseline_ratio(backend, baseline) if row else None
        return ratio[0] if ratio else None

    def throughput(self, backend: str, mode: str) -> float | None:
        record = self.rows[mode].ours.get(backend) if mode in self.rows else None
        return record["throughput"] if record and record["status"] == "ok" else None


def _lines(records: list[dict[str, Any]]) -> list[_Line]:
    layers = {record["case"]: record["layer"] for record in records}
    several_devices = len({record["device"] for record in records}) > 1
    lines: dict[tuple, _Line] = {}
    for case, rows in rows_by_case(records).items():
        for row in rows:
            key = (case, row.device, row.dtype, row.batch_size)
            if key not in lines:
                where = f"{row.device} " if several_devices else ""
                label = f"{case[:70]} | {where}{row.dtype} b{row.batch_size}"
                lines[key] = _Line(layers[case], label)
            lines[key].rows[row.mode] = row
    return list(lines.values())


def _geometric_mean(values: list[float | None]) -> float | None:
    known = [value for value in values if value]
    return math.exp(sum(math.log(value) for value in known) / len(known)) if known else None


def _heatmap(pyplot, labels: list[str], columns: list[tuple[str, str, str]],
             values: list[list[float | None]], target: float, title: str):
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import NullLocator

    several_baselines = len({baseline for _, _, baseline in columns}) > 1
    names = [f"{backend}\n{mode}" + (f"\nvs {baseline}" if several_baselines else "")
             for backend, mode, baseline in columns]
    width = 3.0 + 0.75 * len(columns) + 0.055 * max(len(label) for label in labels)
    height = 1.3 + ROW_INCHES * len(labels)
    figure, axes = pyplot.subplots(figsize=(width, height))
    grid = [[value if value else math.nan for value in row] for row in values]
    norm = LogNorm(vmin=1 / RATIO_RANGE, vmax=RATIO_RANGE)
    image = axes.imshow(grid, cmap="RdYlGn", norm=norm, aspect="auto", interpolation="nearest")
    for y, row in enumerate(values):
        for x, value in enumerate(row):
            if value is None:
                continue
            axes.text(x, y, f"{value:.2f}", ha="center", va="center", fontsize=6.5)
            if value < target:
                axes.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False,
                                         edgecolor="black", linewidth=1.5))
    axes.set_xticks(range(len(columns)), names, fontsize=7)
    axes.xaxis.tick_top()
    axes.set_yticks(range(len(labels)), labels, fontsize=6.5)
    axes.set_title(f"{title}; outlined: below {target:g}x", fontsize=9, pad=28)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.01,
                               ticks=[0.25, 0.5, 1, 2, 4])
    colorbar.ax.yaxis.set_minor_locator(NullLocator())
    colorbar.ax.set_yticklabels(["0.25x", "0.5x", "1x", "2x", "4x"], fontsize=7)
    return figure


def _throughput_chart(pyplot, lines: list[_Line], backends: list[str]):
    modes = [mode for mode in MODES if any(mode in line.rows for line in lines)]
    width = 4.0 + 4.0 * len(modes) + 0.05 * max(len(line.label) for line in lines)
    height = 1.3 + ROW_INCHES * len(lines)
    figure, all_axes = pyplot.subplots(1, len(modes), figsize=(width, height), sharey=True,
                                       squeeze=False)
    markers = "os^Dvx*"
    for axes, mode in zip(all_axes[0], modes, strict=True):
        for number, backend in enumerate(backends):
            points = [(line.throughput(backend, mode), y) for y, line in enumerate(lines)]
            points = [(x, y) for x, y in points if x]
            if points:
                axes.scatter([x for x, _ in points], [y for _, y in points], s=14,
                             marker=markers[number % len(markers)], label=backend)
        axes.set_xscale("log")
        axes.set_title(f"Our layers' throughput, {mode}: samples/s (log scale)", fontsize=9,
                       pad=14)
        axes.grid(axis="x", which="both", alpha=0.3)
        axes.grid(axis="y", alpha=0.15)
        axes.tick_params(axis="x", labelsize=7)
    first = all_axes[0][0]
    first.set_yticks(range(len(lines)), [line.label for line in lines], fontsize=6.5)
    first.set_ylim(len(lines) - 0.5, -0.5)
    first.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(backends),
                 frameon=False, borderaxespad=0.1)
    return figure


def _save(figure, pyplot, path: Path) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    pyplot.close(figure)
    write_atomic(path, buffer.getvalue())
    return path.name
