"""The charts of a benchmark report, readable at 200+ cases and across machines.

- family_ratios.png: ours over each baseline per layer family, the geometric mean of its
  cases' ratios: the view at a glance.
- ratio_heatmap.png: ours over each baseline, a row per case (and dtype, batch size), a
  column per backend, mode and baseline; a log colour scale centred on 1 (green: ours faster,
  red: slower), the ratio written in each cell, and the cells below target outlined.
- throughput.png: our layers' throughput per backend on a log axis, a row per case, predict
  and train side by side.
- roofline_<backend>.png: a point per case and mode (ours filled, Keras's and torch.nn's
  hollow), a row of panels per device: achieved GFLOP/s against arithmetic intensity
  (FLOP/byte of the step's minimum traffic, bench.traffic), log-log, under the roofline drawn
  from the machine's measured peak and bandwidth; beside it, the steps without FLOPs
  (pooling's comparisons aside: dropout, embeddings, activations): achieved GB/s against the
  bytes a step moves, under the bandwidth. Only the points farthest below their roof are named.

Rows take a fixed height (ROW_INCHES), so a chart grows with its cases and no more; nothing
else takes room. Charts without data are not drawn.
"""

from __future__ import annotations

import io
import math
import re
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
ROOFLINE_LABELS = 8  # per panel: the points farthest below their roof
LABEL_PIXELS = (160, 9)  # how close (across, up) two labels' points may be and both be named
OURS = ("keraslayers", "custom", "model")


def write_charts(output: Path, records: list[dict[str, Any]], backends: list[str],
                 families: dict[str, str], target: float,
                 environment: dict[str, Any] | None = None) -> list[str]:
    """The charts that have data, written atomically to `output`; returns their file names.

    `families` maps a layer name to its family (others count as "other"); `target` is the
    ratio below which a cell is outlined; `environment` (results.json's) holds the measured
    peaks the roofline charts draw (none without a bandwidth: runs from before the probe).
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
    for backend in backends:
        roofs = roofs_of(environment or {}, backend)
        points = [record for record in records if record["backend"] == backend
                  and record["status"] == "ok" and record.get("gbytes_per_s")
                  and roofs.get(record["device"], (None, None))[1]]
        if points:
            figure = _roofline_chart(pyplot, backend, points, roofs)
            written.append(_save(figure, pyplot, output / roofline_file(backend)))
    return written


def roofline_file(backend: str) -> str:
    """roofline_<backend>.png, the backend's name ("jax@laptop") made safe for a file name."""
    return f"roofline_{re.sub(r'[^A-Za-z0-9_.@-]', '_', backend)}.png"


def roofs_of(environment: dict[str, Any], backend: str) -> dict[str, tuple]:
    """{device: (peak GFLOP/s, bandwidth GB/s)} of the machine `backend` ran on (the best
    backend's, as the records' fractions use); of its run, in a merged report."""
    if "runs" in environment:
        label = backend.partition("@")[2]
        for run in environment["runs"]:
            if run["label"] == label:
                return roofs_of(run["environment"], backend)
        return {}
    peaks = environment.get("machine_peak_gflops") or {}
    bandwidths = environment.get("machine_peak_gbytes_per_s") or {}
    return {device: (peaks.get(device), bandwidth) for device, bandwidth in bandwidths.items()}


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


def _roofline_chart(pyplot, backend: str, records: list[dict[str, Any]],
                    roofs: dict[str, tuple]):
    from matplotlib.lines import Line2D

    devices = sorted({record["device"] for record in records})
    figure, all_axes = pyplot.subplots(len(devices), 2, figsize=(12.0, 4.6 * len(devices)),
                                       squeeze=False, gridspec_kw={"width_ratios": [1, 2]})
    for (memory_axes, roofline_axes), device in zip(all_axes, devices, strict=True):
        peak, bandwidth = roofs[device]
        on_device = [record for record in records if record["device"] == device]
        with_flops = [record for record in on_device if record.get("gflops") and peak]
        without = [record for record in on_device if not record.get("gflops")]
        _bandwidth_panel(memory_axes, without, bandwidth, f"{backend} on {device}")
        _roofline_panel(roofline_axes, with_flops, peak, bandwidth, f"{backend} on {device}")
    handles = [
        Line2D([], [], linestyle="", marker=marker, markersize=5, color="grey",
                      markerfacecolor=face, label=label)
        for label, marker, face in (("ours", "o", "grey"), ("Keras's layer", "^", "none"),
                                    ("torch.nn", "s", "none"))
    ] + [Line2D([], [], linestyle="", marker="o", markersize=5, color=colour,
                       label=mode) for mode, colour in _MODE_COLOURS.items()]
    figure.legend(handles=handles, loc="upper center", ncols=len(handles), fontsize=7,
                  frameon=False, bbox_to_anchor=(0.5, 1.0))
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    return figure


_MODE_COLOURS = {"predict": "tab:blue", "train": "tab:orange"}
_MARKERS = {"keras": "^", "native": "s"}


def _scatter(axes, records: list[dict[str, Any]], x_of, y_of) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        kind = "ours" if record["implementation"] in OURS else record["implementation"]
        groups.setdefault((kind, record["mode"]), []).append(record)
    for (kind, mode), members in groups.items():
        colour = _MODE_COLOURS.get(mode, "tab:grey")
        ours = kind == "ours"
        axes.scatter([x_of(record) for record in members], [y_of(record) for record in members],
                     s=12 if ours else 14, marker="o" if ours else _MARKERS.get(kind, "D"),
                     color=colour if ours else "none", edgecolors=colour, linewidths=0.8,
                     alpha=0.8, zorder=3)


def _label_farthest(axes, records: list[dict[str, Any]], x_of, y_of) -> None:
    """Names the ROOFLINE_LABELS cases (and modes) with the lowest fraction of their roofline,
    each once, at the lowest of its implementations' points, leaving out a label that would
    overlap one already written."""
    known = sorted((record for record in records if record.get("roofline_fraction")),
                   key=lambda record: record["roofline_fraction"])
    named: set[tuple] = set()
    placed: list[tuple[float, float]] = []  # the labels' points, in pixels
    for record in known:
        key = (record["case"], record["mode"], record["batch_size"], record["dtype"])
        point = (x_of(record), y_of(record))
        x, y = axes.transData.transform(point)
        if key in named or any(abs(x - px) < LABEL_PIXELS[0] and abs(y - py) < LABEL_PIXELS[1]
                               for px, py in placed):
            continue
        if len(named) == ROOFLINE_LABELS:
            break
        named.add(key)
        placed.append((x, y))
        who = "" if record["implementation"] in OURS else f" ({record['implementation']})"
        text = (f"{record['case'][:40]} {record['mode']} b{record['batch_size']}: "
                f"{record['roofline_fraction']:.1%}{who}")
        # Written away from the nearer side, so that it stays inside the panel.
        right_half = axes.transAxes.inverted().transform((x, y))[0] > 0.5
        axes.annotate(text, point, fontsize=5.5, xytext=(-4 if right_half else 4, -2),
                      textcoords="offset points", ha="right" if right_half else "left",
                      color="#333")


def _bandwidth_panel(axes, records: list[dict[str, Any]], bandwidth: float, where: str) -> None:
    axes.set_title(f"{where}, steps without FLOPs:\nachieved GB/s against bytes moved", fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("MB moved per step (minimum traffic)", fontsize=7)
    axes.set_ylabel("achieved GB/s", fontsize=7)
    axes.axhline(bandwidth, color="black", linewidth=1)
    axes.annotate(f"measured bandwidth {bandwidth:.3g} GB/s", (0.02, bandwidth),
                  xycoords=("axes fraction", "data"), xytext=(0, 3),
                  textcoords="offset points", fontsize=6.5)

    def megabytes(record):
        return record["bytes"] / 1e6

    def rate(record):
        return record["gbytes_per_s"]

    _scatter(axes, records, megabytes, rate)
    axes.autoscale_view()
    _label_farthest(axes, records, megabytes, rate)
    axes.grid(which="both", alpha=0.2)
    axes.tick_params(labelsize=7)
    if not records:
        axes.text(0.5, 0.5, "none", transform=axes.transAxes, ha="center", fontsize=8)


def _roofline_panel(axes, records: list[dict[str, Any]], peak: float | None, bandwidth: float,
                    where: str) -> None:
    axes.set_title(f"{where}: achieved GFLOP/s against arithmetic intensity, under the "
                   "roofline\n(the machine's measured matmul peak and memory bandwidth)",
                   fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("FLOP per byte of minimum traffic", fontsize=7)
    axes.set_ylabel("achieved GFLOP/s", fontsize=7)
    axes.grid(which="both", alpha=0.2)
    axes.tick_params(labelsize=7)
    if not records or not peak:
        axes.text(0.5, 0.5, "no step with FLOPs" if peak else "no peak GFLOP/s measured",
                  transform=axes.transAxes, ha="center", fontsize=8)
        return

    def intensity(record):
        return record["flops"] / record["bytes"]

    def rate(record):
        return record["gflops"]

    ridge = peak / bandwidth
    low = min([intensity(record) for record in records] + [ridge]) / 3
    high = max([intensity(record) for record in records] + [ridge]) * 3
    xs = [low * (high / low) ** (step / 200) for step in range(201)]
    axes.plot(xs, [min(peak, bandwidth * x) for x in xs], color="black", linewidth=1.2,
              zorder=2)
    axes.annotate(f"peak {peak:.3g} GFLOP/s", (high, peak), ha="right", va="bottom",
                  fontsize=6.5)
    axes.annotate(f"{bandwidth:.3g} GB/s", (low, bandwidth * low), xytext=(4, 4),
                  textcoords="offset points", fontsize=6.5, rotation=0)
    _scatter(axes, records, intensity, rate)
    axes.autoscale_view()
    _label_farthest(axes, records, intensity, rate)


def _save(figure, pyplot, path: Path) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    pyplot.close(figure)
    write_atomic(path, buffer.getvalue())
    return path.name
