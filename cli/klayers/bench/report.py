"""Reports of a benchmark run: per-case tables (shared by the terminal, Markdown and HTML) and
the charts of bench.charts, written beside results.json as report.md (which links the PNG
files) and report.html (self-contained: the charts embedded, the tables sortable by a click
on a column's header).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klayers.bench import charts as chart_files
from klayers.bench.results import OURS, Row, rows_by_case
from klayers.bench.statistics import relative_speeds
from klayers.process import write_atomic

BACKEND_ORDER = ("jax", "tensorflow", "torch")
LEGEND = (
    "Each cell: throughput (samples/s); median step latency ± IQR as a % of it; achieved "
    "GFLOP/s (and its fraction of the machine's peak); achieved GB/s of the step's minimum "
    "memory traffic (and its fraction of the roofline's bound, min(peak GFLOP/s, FLOP/byte x "
    "measured bandwidth), or of the bandwidth alone for a step without FLOPs; above 100%: the "
    "step's data stayed in cache); first call (tracing, compiling) and "
    "peak memory growth. Bold: the fastest backend. `relative`: throughput over the fastest "
    "backend's. `vs keras` / `vs native`: how many times faster ours ran than that baseline on "
    "the same backend (above 1: ours is faster), ± its spread."
)


@dataclass
class Cell:
    lines: list[str]
    fastest: bool = False
    failed: bool = False
    noisy: bool = False


@dataclass
class CaseTable:
    """The rows of one case: backends side by side, relative speeds, ratios to baselines."""

    title: str
    header: list[str]
    rows: list[list[Cell]]
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def backends_in(records: list[dict[str, Any]]) -> list[str]:
    """The backends in BACKEND_ORDER; those of merged runs ("jax@laptop") by run, then so."""
    found = {record["backend"] for record in records}

    def order(name: str) -> tuple:
        backend, _, run = name.partition("@")
        return run, (BACKEND_ORDER + (backend,)).index(backend), backend

    return sorted(found, key=order)


def format_throughput(samples_per_s: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if samples_per_s >= scale:
            return f"{samples_per_s / scale:.3g}{suffix}/s"
    return f"{samples_per_s:.3g}/s"


def format_percent(fraction: float) -> str:
    """42%, 3.1%, 0.052%: two significant digits below 10%."""
    percent = fraction * 100
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.2g}%"


def format_latency(latency: dict[str, float]) -> str:
    spread = latency["iqr"] / latency["median"] * 100 if latency["median"] else 0
    return f"{latency['median']:.3g} ms ±{spread:.0f}%"


def case_tables(records: list[dict[str, Any]]) -> list[CaseTable]:
    backends = backends_in(records)
    baselines = sorted({r["implementation"] for r in records
                        if r["implementation"] in ("keras", "native") and r["status"] != "skipped"})
    tables = []
    for case, rows in rows_by_case(records).items():
        header = ["device", "dtype", "mode", "batch", *backends, "relative"]
        header += [f"vs {baseline}" for baseline in baselines]
        table = CaseTable(case, header, [])
        for row in rows:
            table.rows.append(_table_row(row, backends, baselines, table.failures))
        tables.append(table)
    return tables


# The targets of the performance work (issue 8): ours at least this fast as Keras's layer on the
# same backend everywhere, and KERAS_SLOW_TARGET times as fast where Keras's layer runs at most
# 1/KERAS_SLOW_FACTOR of its best backend's throughput.
KERAS_RATIO_TARGET = 0.95
KERAS_SLOW_FACTOR = 3.0
KERAS_SLOW_TARGET = 1.5


def keras_summary(records: list[dict[str, Any]]) -> CaseTable | None:
    """One table of ours/Keras throughput ratios: a row per case, a column per backend and mode.

    A ratio below its target is marked ✗ (and failed); a dagger marks where Keras's own layer
    ran at most a third as fast as on its best backend (where a better formulation pays most).
    """
    backends = backends_in(records)
    modes = [mode for mode in ("predict", "train") if any(r["mode"] == mode for r in records)]
    grouped: dict[tuple, dict[str, Row]] = {}
    for case, rows in rows_by_case(records).items():
        for row in rows:
            grouped.setdefault((case, row.device, row.dtype, row.batch_size), {})[row.mode] = row
    header = ["case", "device", "dtype", "batch"]
    header += [f"{backend} {mode}" for backend in backends for mode in modes]
    table = CaseTable("Ours over Keras's layer, same backend (throughput ratio)", header, [])
    counts = {"all": 0, "met": 0, "slow": 0, "slow_met": 0}
    for (case, device, dtype, batch), by_mode in grouped.items():
        cells = [Cell([case]), Cell([device]), Cell([dtype]), Cell([str(batch)])]
        for backend in backends:
            for mode in modes:
                cells.append(_summary_cell(by_mode.get(mode), backend, counts))
        if any(cell.lines != ["-"] for cell in cells[4:]):
            table.rows.append(cells)
    if not counts["all"]:
        return None
    table.notes = [
        f"{counts['met']} of {counts['all']} ratios at least {KERAS_RATIO_TARGET}x.",
        f"† Keras's own layer ran at most 1/{KERAS_SLOW_FACTOR:g} as fast as on its best backend: "
        f"{counts['slow']} cells, {counts['slow_met']} of them at least {KERAS_SLOW_TARGET}x.",
    ]
    return table


ROOFLINE_ROWS = 10


def roofline_table(records: list[dict[str, Any]]) -> CaseTable | None:
    """Our measurements farthest below their roofline (the lowest fractions of the bound),
    ROOFLINE_ROWS of them; None when no record has a roofline fraction (a run from before
    the bandwidth probe)."""
    measured = sorted((record for record in records if record["implementation"] in OURS
                       and record["status"] == "ok" and record.get("roofline_fraction")),
                      key=lambda record: record["roofline_fraction"])
    if not measured:
        return None
    header = ["case", "backend", "device", "dtype", "mode", "batch", "FLOP/byte", "achieved",
              "of roofline"]
    table = CaseTable(f"Farthest from the roofline: our {min(len(measured), ROOFLINE_ROWS)} "
                      "lowest fractions of min(peak, FLOP/byte x bandwidth)", header, [])
    for record in measured[:ROOFLINE_ROWS]:
        intensity = (f"{record['flops'] / record['bytes']:.3g}" if record.get("flops")
                     else "no FLOPs")
        achieved = (f"{record['gflops']:.3g} GFLOP/s, " if record.get("gflops") else "")
        achieved += f"{record['gbytes_per_s']:.3g} GB/s"
        table.rows.append([Cell([text]) for text in (
            record["case"], record["backend"], record["device"], record["dtype"],
            record["mode"], str(record["batch_size"]), intensity, achieved,
            format_percent(record["roofline_fraction"]))])
    return table


def quantization_table(records: list[dict[str, Any]]) -> CaseTable | None:
    """Each of our quantized measurements against the same case unquantized (throughput and
    weight bytes) and against Keras's layer quantized the same way; None without any."""
    def key(record: dict[str, Any], implementation: str, quantize: str | None) -> tuple:
        return (record["layer"], json.dumps(record["config"], sort_keys=True),
                str(record["input_shape"]), record["backend"], record["device"],
                record["dtype"], record["mode"], record["batch_size"], implementation, quantize)

    measured = {key(r, r["implementation"], r.get("quantize")): r for r in records
                if r["status"] == "ok"}
    quantized = [r for r in records if r.get("quantize") and r["implementation"] in OURS
                 and r["status"] == "ok"]
    if not quantized:
        return None
    header = ["case", "backend", "device", "mode", "batch", "throughput", "vs unquantized",
              "weights", "smaller by", "vs Keras quantized"]
    table = CaseTable("Quantized layers: against the same case unquantized and against Keras's "
                      "quantized layer (throughput ratios; weight bytes)", header, [])
    for record in quantized:
        plain = measured.get(key(record, record["implementation"], None))
        keras_record = measured.get(key(record, "keras", record["quantize"]))
        speed = (f"{record['throughput'] / plain['throughput']:.2f}x" if plain else "-")
        weights = record.get("weight_bytes")
        smaller = (f"{plain['weight_bytes'] / weights:.2f}x"
                   if plain and weights and plain.get("weight_bytes") else "-")
        versus = (keras_record.get("paired_speedup") or {}).get("median") if keras_record else None
        table.rows.append([Cell([text]) for text in (
            record["case"], record["backend"], record["device"], record["mode"],
            str(record["batch_size"]), format_throughput(record["throughput"]), speed,
            f"{weights / 1e6:.3g} MB" if weights else "-", smaller,
            f"{versus:.2f}x" if versus else "-")])
    return table


def _summary_cell(row: Row | None, backend: str, counts: dict[str, int]) -> Cell:
    ratio = row.baseline_ratio(backend, "keras") if row else None
    if ratio is None:
        return Cell(["-"])
    keras_speeds = relative_speeds({name: record["throughput"]
                                    for (name, implementation), record in row.baselines.items()
                                    if implementation == "keras" and record["status"] == "ok"})
    slow = keras_speeds.get(backend, 1.0) <= 1 / KERAS_SLOW_FACTOR
    target = KERAS_SLOW_TARGET if slow else KERAS_RATIO_TARGET
    counts["all"] += 1
    counts["met"] += ratio[0] >= KERAS_RATIO_TARGET
    counts["slow"] += slow
    counts["slow_met"] += slow and ratio[0] >= KERAS_SLOW_TARGET
    missed = ratio[0] < target
    return Cell([f"{ratio[0]:.2f}x" + (" †" if slow else "") + (" ✗" if missed else "")],
                failed=missed)


def _table_row(row: Row, backends: list[str], baselines: list[str], failures: list[str]):
    relative = row.relative()
    cells = [Cell([row.device]), Cell([row.dtype]), Cell([row.mode]), Cell([str(row.batch_size)])]
    for backend in backends:
        record = row.ours.get(backend)
        if record is None:
            cells.append(Cell(["-"]))
        elif record["status"] != "ok":
            cells.append(Cell([record["status"]], failed=True))
            failures.append(f"{backend} {row.dtype} {row.mode} batch {row.batch_size}: "
                            f"{record['error']}")
        else:
            lines = [format_throughput(record["throughput"]), format_latency(record["latency_ms"])]
            if record.get("gflops"):
                peak = record.get("peak_fraction")
                lines.append(f"{record['gflops']:.3g} GFLOP/s" + (f" ({peak:.0%})" if peak else ""))
            if record.get("gbytes_per_s"):
                roofline = record.get("roofline_fraction")
                lines.append(f"{record['gbytes_per_s']:.3g} GB/s" + (
                    f" ({format_percent(roofline)} of roofline)" if roofline else ""))
            lines.append(f"1st {record['first_call_s'] * 1e3:.3g} ms"
                         + (f", +{record['peak_memory_mb']:.3g} MB"
                            if record.get("peak_memory_mb") is not None else ""))
            cells.append(Cell(lines, fastest=relative.get(backend) == 1.0 and len(relative) > 1,
                              noisy=bool(record.get("noisy"))))
    ordered = sorted(relative.items(), key=lambda item: -item[1])
    cells.append(Cell([", ".join(f"{backend} {speed:.2f}x" for backend, speed in ordered)
                       or "-"]))
    for baseline in baselines:
        ratios = []
        for backend in backends:
            ratio = row.baseline_ratio(backend, baseline)
            if ratio:
                ratios.append(f"{backend} {ratio[0]:.2f}x ±{ratio[1]:.2f}")
        cells.append(Cell([", ".join(ratios) or "-"]))
    return cells


def write_reports(output: Path, environment: dict[str, Any], records: list[dict]) -> None:
    """report.md, report.html and the PNG charts they show, each written atomically."""
    charts = chart_files.write_charts(output, records, backends_in(records), layer_families(),
                                      KERAS_RATIO_TARGET, environment)
    summary, roofline = keras_summary(records), roofline_table(records)
    quantization = quantization_table(records)
    tables = [table for table in (summary, quantization, roofline) if table] + case_tables(records)
    write_atomic(output / "report.md", markdown(environment, tables, charts))
    images = {name: (output / name).read_bytes() for name in charts}
    write_atomic(output / "report.html", html_page(environment, tables, images))


def layer_families() -> dict[str, str]:
    """Each catalogue layer's family (keraslayers/catalog.py), for the per-family charts."""
    from klayers.bench.suites import SuiteError, catalog_records

    try:
        return {record.name: record.family for record in catalog_records()}
    except SuiteError:  # keraslayers not installed: every case counts as "other"
        return {}


def environment_lines(environment: dict[str, Any]) -> list[str]:
    if "runs" in environment:  # several runs in one report (results.merge_runs)
        return [f"{run['label']}: {line}" for run in environment["runs"]
                for line in environment_lines(run["environment"])]
    backends = ", ".join(f"{name} {version}" for name, version in
                         (environment.get("backends") or {}).items() if version)
    threads = environment.get("threads") or {}
    peaks = environment.get("peak_gflops") or {}
    peak_text = "; ".join(
        f"{backend}: " + ", ".join(f"{device} {value:.0f}" for device, value in per.items())
        for backend, per in peaks.items())
    best = ", ".join(f"{device} {value:.0f}" for device, value in
                     (environment.get("machine_peak_gflops") or {}).items())
    bandwidths = environment.get("peak_gbytes_per_s") or {}
    bandwidth_text = "; ".join(
        f"{backend}: " + ", ".join(f"{device} {value:.3g}" for device, value in per.items())
        for backend, per in bandwidths.items() if per)
    best_bandwidth = ", ".join(f"{device} {value:.3g}" for device, value in
                               (environment.get("machine_peak_gbytes_per_s") or {}).items())
    lines = [
        f"Suite: {environment.get('suite', '-')}; started {environment.get('started', '-')}"
        + (" (interrupted)" if environment.get("interrupted") else ""),
        f"Python {environment.get('python', '-')}, Keras {environment.get('keras', '-')}, "
        f"{backends or 'no backend'}",
        f"CPU: {environment.get('cpu') or 'unknown'}, {environment.get('cores', '-')} cores "
        f"({environment.get('usable_cores', '-')} usable); threads per worker: "
        f"{threads.get('threads', '-')}",
        f"GPUs: {', '.join(environment.get('gpus') or []) or 'none'}; "
        f"git commit {(environment.get('git_commit') or '-')[:12]}",
        f"Peak float32 matmul GFLOP/s: {peak_text or '-'}; machine peak (best backend): "
        f"{best or '-'}",
        f"Memory bandwidth GB/s (float32 y = x * a, bytes read + written): "
        f"{bandwidth_text or '-'}; machine (best backend): {best_bandwidth or '-'}",
    ]
    loads = [environment.get(key) for key in ("load_average_start", "load_average_end")]
    if any(load is not None for load in loads):
        lines.append("Load average at start and end: " + ", ".join(
            f"{load:.1f}" if load is not None else "-" for load in loads))
    warning = busy_machine_warning(environment)
    if warning:
        lines.append(f"Warning: {warning}")
    settings = environment.get("settings") or {}
    if settings:
        lines.append(f"Timed rounds: at least {settings.get('min_time_s')} s and "
                     f"{settings.get('min_rounds')} steps after warm-up; latency is the median "
                     f"per step, ± the interquartile range as a % of it")
        if settings.get("interleaved"):
            lines.append("A case's implementations (ours, Keras's, torch.nn's) were timed in "
                         "alternating blocks of steps; a ratio to a baseline is the median of "
                         "the per-block ratios")
    return lines


def busy_machine_warning(environment: dict[str, Any]) -> str | None:
    """A warning when other processes kept the cores busy while the run measured."""
    cores = environment.get("usable_cores") or 1
    threads = min((environment.get("threads") or {}).get("threads") or 1, cores)
    loads = [environment.get(key) for key in ("load_average_start", "load_average_end")]
    busiest = max((load for load in loads if load is not None), default=0.0)
    # The run itself keeps up to its threads' cores busy; more than half a core more than that
    # (or half of the others) is a warning.
    if busiest > threads + max(cores - threads, 1) / 2:
        return (f"the machine was busy (load average {busiest:.1f} on {cores} cores): other "
                "processes competed for the cores, so these figures are noisy; threaded "
                "runtimes (OpenMP in torch) suffer most. Quote ratios, and re-run on an idle "
                "machine (or with --threads 1) before trusting them.")
    return None


def markdown(environment: dict[str, Any], tables: list[CaseTable], charts: list[str]) -> str:
    out = ["# klayers bench", ""]
    out += [f"- {line}" for line in environment_lines(environment)]
    out.append("")
    out += [f"![{Path(chart).stem}]({chart})" for chart in charts]
    for table in tables:
        out += ["", f"## {table.title}", ""]
        out.append("| " + " | ".join(table.header) + " |")
        out.append("|" + "---|" * len(table.header))
        for row in table.rows:
            out.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
        if table.failures:
            out += [""] + [f"- failed: {failure}" for failure in table.failures]
        if table.notes:
            out += [""] + [f"- {note}" for note in table.notes]
    out += ["", LEGEND, ""]
    return "\n".join(out)


def _markdown_cell(cell: Cell) -> str:
    text = "<br>".join(line.replace("|", "\\|") for line in cell.lines)
    text += " (noisy)" if cell.noisy else ""
    return f"**{text}**" if cell.fastest else text


# Click a column's header to sort its table by it (numbers by value, the rest as text); click
# again to reverse. The only script of the page.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (header, column) {
  header.addEventListener("click", function () {
    var table = header.closest("table"), body = table.tBodies[0];
    var descending = header.dataset.order !== "descending";
    table.querySelectorAll("th").forEach(function (th) { delete th.dataset.order; });
    header.dataset.order = descending ? "descending" : "ascending";
    var key = function (row) {
      var text = row.cells[header.cellIndex].textContent.trim();
      var number = parseFloat(text.replace(/[^0-9.eE+-]/g, " ").trim().split(" ")[0]);
      return isNaN(number) ? text : number;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
                                        : (typeof x === "number" ? -1 : 1);
      return descending ? -order : order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:100%}table{border-collapse:collapse;"
    "margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
    "th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}"
    "th[data-order=ascending]::after{content:' \\25B2'}"
    "th[data-order=descending]::after{content:' \\25BC'}"
    ".fastest{background:#e6f4e6;font-weight:bold}.failed{color:#b00}"
    ".noisy{color:#a60}img{max-width:100%;height:auto}"
)


def html_page(environment: dict[str, Any], tables: list[CaseTable],
              images: dict[str, bytes]) -> str:
    """One self-contained page: the charts (`images`, PNG bytes by file name) embedded."""
    parts = ["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>klayers bench</title><style>{STYLE}</style></head><body>",
             "<h1>klayers bench</h1><ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in environment_lines(environment)]
    parts.append("</ul>")
    for name, data in images.items():
        source = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(f"<p><img src='{source}' alt='{html.escape(Path(name).stem)}'></p>")
    for table in tables:
        parts.append(f"<h2>{html.escape(table.title)}</h2><table class='sortable'><thead><tr>")
        parts += [f"<th>{html.escape(name)}</th>" for name in table.header]
        parts.append("</tr></thead><tbody>")
        for row in table.rows:
            parts.append("<tr>")
            for cell in row:
                classes = " ".join(name for name, on in (
                    ("fastest", cell.fastest), ("failed", cell.failed), ("noisy", cell.noisy))
                    if on)
                text = "<br>".join(html.escape(line) for line in cell.lines)
                parts.append(f"<td class='{classes}'>{text}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table>")
        if table.failures:
            parts.append("<ul>" + "".join(f"<li class='failed'>{html.escape(failure)}</li>"
                                          for failure in table.failures) + "</ul>")
        if table.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(note)}</li>"
                                          for note in table.notes) + "</ul>")
    parts.append(f"<p>{html.escape(LEGEND)}</p><script>{SORT_SCRIPT}</script></body></html>\n")
    return "\n".join(parts)
