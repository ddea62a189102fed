"""The `klayers` command line: list, info, bench, report, compare, train, evaluate."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from klayers import environment
from klayers.bench import suites
from klayers.bench.compare import DEFAULT_THRESHOLD


def _backend_list(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str | None:
    """--backend, repeatable and comma-separated alike: "jax,torch", or all; None when absent."""
    names = [part.strip() for item in value for part in item.split(",") if part.strip()]
    if not names:
        return None
    return "all" if "all" in (name.lower() for name in names) else ",".join(names)


def backend_option(default: str) -> Callable:
    return click.option(
        "--backend", "backends", multiple=True, callback=_backend_list,
        metavar="NAME[,NAME]|all",
        help=f"Backends (tensorflow, jax, torch): repeatable or comma-separated, or all "
             f"[default: {default}].")


def _positive_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise click.ClickException(f"--threads must be a positive integer, received {value}")
    return value


def threads_option(help: str) -> Callable:
    """--threads, validated here once for bench, train and evaluate."""
    return click.option("--threads", type=int, callback=_positive_threads, help=help)


@click.group()
@click.version_option(package_name="klayers", prog_name="klayers")
def cli() -> None:
    """Keras 3 layers on TensorFlow, JAX and PyTorch: catalogue, environment and benchmarks."""


@cli.command("list")
@click.option("--family", metavar="NAME", help="Only the layers of this family (core, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_layers(family: str | None, as_json: bool) -> None:
    """List the layers of the package, by family."""
    # Importing the catalogue imports keras, and with it the backend the user chose.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keraslayers.catalog import LAYERS

    families = sorted({record.family for record in LAYERS})
    if family is not None and family not in families:
        raise click.BadParameter(
            f"unknown family {family!r}; known families: {', '.join(families)}",
            param_hint="'--family'",
        )
    records = sorted(
        (record for record in LAYERS if family is None or record.family == family),
        key=lambda record: (record.family, record.name),
    )
    if as_json:
        rows = [
            {"name": r.name, "family": r.family, "keras_name": r.keras_name, "summary": r.summary}
            for r in records
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="klayers layers")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("Keras counterpart", no_wrap=True)
    table.add_column("summary")
    for record in records:
        table.add_row(record.name, record.family, record.keras_name or "-", escape(record.summary))
    Console().print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=environment.DEFAULT_PROBE_TIMEOUT,
    show_default=True,
    help="Seconds to wait for each backend's probe.",
)
def info(as_json: bool, timeout: float) -> None:
    """Show versions, the machine, and the devices each backend sees.

    Each backend is probed in a subprocess of its own; this process imports none of them.
    """
    found = environment.environment_info(timeout=timeout)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    console = Console()
    console.print(_machine_table(found))
    console.print(_backends_table(found["backends"]))


def _machine_table(found: dict[str, Any]) -> Table:
    machine = found["machine"]
    table = Table(title="Machine", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("klayers", found["klayers"] or "not installed")
    table.add_row("Python", machine["python"])
    table.add_row("Keras", found["keras"] or "not installed")
    table.add_row("platform", machine["platform"])
    table.add_row("CPU", machine["cpu"] or "unknown")
    table.add_row("cores", f"{machine['logical_cores']} logical, {machine['usable_cores']} usable")
    memory = machine["memory_bytes"]
    table.add_row("memory", f"{memory / 2**30:.1f} GiB" if memory else "unknown")
    threads = [f"{name}={value}" for name, value in machine["threads"].items() if value]
    table.add_row("thread settings", "\n".join(threads) or "none set")
    if machine["gpus"]:
        table.add_row("GPUs", "\n".join(machine["gpus"]))
    table.add_row("git commit", machine["git_commit"] or "-")
    return table


def _backends_table(reports: list[dict[str, Any]]) -> Table:
    table = Table(title="Backends")
    for column in ("backend", "installed", "version", "devices", "status"):
        table.add_column(column)
    for report in reports:
        devices = ", ".join(
            f"{device['name']} ({device['model']})" if device.get("model") else device["name"]
            for device in report["devices"]
        )
        if report["status"] == "ok":
            status = "[green]ok[/]"
        elif report["status"] == "error":
            status = f"[red]error[/]: {escape(report['error'])}"
        else:
            status = f"[dim]{report['status']}[/]"
        table.add_row(
            report["backend"],
            "yes" if report["installed"] else "no",
            report["version"] or "-",
            devices or "-",
            status,
        )
    return table


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _baselines(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = () if value.strip().lower() == "none" else _comma_list(value)
    for name in chosen:
        if name not in suites.BASELINES:
            raise click.BadParameter(
                f"unknown baseline {name!r}; expected a comma-separated list of "
                f"{', '.join(suites.BASELINES)}, or none"
            )
    return chosen


@cli.command()
@click.option("--suite", default="quick", show_default=True, metavar="NAME|PATH.yaml",
              help="A suite of configs/bench/ (quick, standard, full) or a YAML file of yours.")
@click.option("--layer", "layers", multiple=True, metavar="GLOB",
              help="Only the cases whose layer matches (repeatable; 'Conv*').")
@click.option("--custom", metavar="MODULE:CLASS",
              help="Benchmark a layer of yours instead of a suite (with --kwargs, --input-shape).")
@click.option("--kwargs", "kwargs_json", default="{}", metavar="JSON",
              help="The --custom layer's constructor arguments, as a JSON object.")
@click.option("--input-shape", metavar="N,N[;N,N]",
              help="The --custom layer's input shape without the batch axis (';' between inputs).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), metavar="PATH.keras",
              help="Benchmark a saved model instead of a suite.")
@backend_option("every installed one")
@click.option("--device", "devices", multiple=True, metavar="NAME|KIND",
              help="Only these devices: a kind (cpu, gpu) or a name glob (gpu:0); repeatable.")
@click.option("--baseline", "baselines", default="keras", show_default=True,
              callback=_baselines, metavar="LIST",
              help="Baselines measured in the same run: keras, native (torch.nn), or none.")
@click.option("--batch-size", "batch_sizes", multiple=True, type=click.IntRange(min=1),
              help="Replace the cases' batch sizes (repeatable).")
@click.option("--dtype", "dtypes", multiple=True, type=click.Choice(suites.DTYPE_POLICIES),
              help="Replace the cases' dtype policies (repeatable).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(suites.MODES),
              help="Replace the cases' modes (repeatable).")
@click.option("--quantize", type=click.Choice(suites.QUANTIZE_MODES),
              help="Quantize every case (model.quantize(MODE), ours and Keras's layer) before "
                   "timing it.")
@click.option("--min-time", type=click.FloatRange(min=0, min_open=True),
              help="Seconds of timed steps per measurement, at least (default: the suite's, or 1).")
@click.option("--min-rounds", default=10, show_default=True, type=click.IntRange(min=1),
              help="Timed steps per measurement, at least.")
@click.option("--timeout", default=300.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds a case (its implementations, timed together) or a worker's start "
                   "may take before it is failed.")
@threads_option("Threads (and cores) per worker, the same for every backend "
                "[default: the usable cores].")
@click.option("--torch-compile", is_flag=True,
              help="Compile on torch too (jit_compile=True, which is torch.compile).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the results [default: benchmarks/results/<date>-<host>/].")
def bench(**options: Any) -> None:
    """Measure layers per backend and device: throughput, latency, GFLOP/s, memory.

    Each backend runs in a worker subprocess of its own, one after another, with the same
    thread settings. Results go to results.jsonl as they come, then results.json,
    results.csv, report.md and report.html with charts, also after a Ctrl-C.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from klayers.bench import plan as benchmark
    from klayers.bench.report import LEGEND, busy_machine_warning
    from klayers.bench.run import Settings
    from klayers.bench.tables import print_run_tables
    from klayers.process import threads_and_cores

    suite_name, cases, suite_min_time = _cases(options)
    threads, cores = threads_and_cores(options["threads"])
    settings = Settings(
        min_time=options["min_time"] or suite_min_time or 1.0,
        min_rounds=options["min_rounds"],
        threads=threads,
        cores=cores,
        torch_compile=options["torch_compile"],
        timeout=options["timeout"],
    )
    console = Console()
    try:
        with console.status("Probing the backends..."):
            found = environment.environment_info(_bench_backends(options["backends"]))
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted before anything was measured.[/]")
        raise SystemExit(130) from None
    plans, skipped = benchmark.plan(cases, found["backends"], options["devices"],
                                    options["baselines"])
    for line in skipped:
        console.print(f"[yellow]{escape(line)}[/]")
    if not plans:
        raise click.UsageError("no backend left to run: " + "; ".join(skipped))
    output = options["output"] or benchmark.default_output()
    env_record = benchmark.environment_record(found, settings, suite_name, options["baselines"])
    total = sum(len(p.measurements) for p in plans)
    console.print(f"{len(cases)} case(s), {total} measurement(s) on "
                  f"{', '.join(p.backend for p in plans)}; {settings.threads} thread(s) each")
    # Measurements done of all, elapsed, and an estimate of what is left (from the pace so far).
    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), "left",
                        TimeRemainingColumn(), console=console)

    def describe(measurement: suites.Measurement | None, backend: str) -> str:
        if measurement is None:
            return backend
        return escape(f"{measurement.case.label[:60]} | {backend} {measurement.device} | "
                      f"{measurement.implementation} {measurement.mode} b{measurement.batch_size}")

    with progress:
        first = plans[0].measurements[0] if plans[0].measurements else None
        task = progress.add_task(describe(first, plans[0].backend), total=total)

        def on_record(record: dict, upcoming: suites.Measurement | None) -> None:
            progress.update(task, advance=1, description=describe(upcoming, record["backend"]))

        outcome = benchmark.run_benchmark(plans, settings, output, env_record,
                                          on_record=on_record)
    print_run_tables(console, outcome.records)
    console.print(f"[dim]{escape(LEGEND)}[/]")
    warning = busy_machine_warning(outcome.environment)
    if warning:
        console.print(f"[yellow]Warning: {escape(warning)}[/]")
    failed = sum(record["status"] not in ("ok", "skipped") for record in outcome.records)
    console.print(f"{len(outcome.records)} record(s), {failed} failed; written to {output}/ "
                  "(results.json, results.csv, results.jsonl, report.md, report.html)")
    if outcome.interrupted:
        console.print("[yellow]Interrupted: the files hold what was measured before.[/]")
        raise SystemExit(130)


def _cases(options: dict[str, Any]) -> tuple[str, tuple[suites.Case, ...], float | None]:
    """The run's name, its cases (filtered and overridden by the options), the suite min_time."""
    name, cases, min_time = _selected_cases(options)
    return name, suites.quantized(cases, options["quantize"]), min_time


def _selected_cases(options: dict[str, Any]) -> tuple[str, tuple[suites.Case, ...], float | None]:
    batch_sizes = tuple(options["batch_sizes"]) or (32,)
    dtypes = tuple(options["dtypes"]) or ("float32",)
    modes = tuple(options["modes"]) or suites.MODES
    try:
        if options["custom"]:
            if not options["input_shape"]:
                raise click.UsageError("--custom needs --input-shape")
            case = suites.custom_case(options["custom"], options["kwargs_json"],
                                      options["input_shape"], batch_sizes, dtypes, modes)
            return options["custom"], (case,), None
        if options["model_path"]:
            case = suites.model_case(options["model_path"], batch_sizes, dtypes, modes)
            return options["model_path"], (case,), None
        suite = suites.load_suite(options["suite"])
    except suites.SuiteError as error:
        raise click.UsageError(str(error)) from None
    cases = suites.select(suite.cases, options["layers"])
    if not cases:
        raise click.BadParameter(
            f"no case of suite {suite.name!r} matches {', '.join(options['layers'])}",
            param_hint="'--layer'")
    overrides = {key: tuple(options[key]) for key in ("batch_sizes", "dtypes", "modes")
                 if options[key]}
    if overrides:
        cases = tuple(dataclasses.replace(case, **overrides) for case in cases)
    return suite.name, cases, suite.min_time


@cli.command()
@click.argument("results_paths", metavar="RUN_DIR|RESULTS.json|RESULTS.jsonl...", nargs=-1,
                required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.html and charts [default: the run's folder; "
                   "required for several runs].")
def report(results_paths: tuple[Path, ...], output: Path | None) -> None:
    """Render saved runs: tables here, report.md, report.html and charts on disk.

    From results.json, or from results.jsonl (a run killed before it wrote results.json);
    given the run's folder, from its results.json if there is one, else its results.jsonl.
    Several runs (a laptop's, a server's, a GPU box's) make one report: each backend of each
    run is a column, named after the run's folder, and each run's environment is listed.
    """
    from klayers.bench import report as reports
    from klayers.bench.results import load_results, merge_runs
    from klayers.bench.tables import print_run_tables

    if len(results_paths) > 1 and output is None:
        raise click.UsageError("several runs make one report: say where with --output")
    try:
        documents = [load_results(path) for path in results_paths]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'RESULTS.json'") from None
    if len(documents) == 1:
        document = documents[0]
    else:
        document = merge_runs([_run_label(path) for path in results_paths], documents)
    console = Console()
    print_run_tables(console, document["results"])
    first = results_paths[0]
    folder = output or (first if first.is_dir() else first.parent)
    reports.write_reports(folder, document["environment"], document["results"])
    console.print(f"report.md and report.html written to {folder}/")


def _run_label(path: Path) -> str:
    """A run's name in a merged report: its folder's."""
    return (path if path.is_dir() else path.parent).resolve().name


@cli.command()
@click.argument("base_path", metavar="BASE.json",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new_path", metavar="NEW.json",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--threshold", default=DEFAULT_THRESHOLD, show_default=True,
              type=click.FloatRange(min=0),
              help="Fail when a median latency grew by more than this fraction.")
@click.option("--match", "match", metavar="FIELD[,FIELD]",
              help="Match records on these fields only (and the case): e.g. "
                   "implementation,backend,dtype,mode,batch_size to line up a CPU run with a "
                   "GPU run [default: every field of what was measured].")
def compare(base_path: Path, new_path: Path, threshold: float, match: str | None) -> None:
    """Line up two runs' matching records; exit 1 when any slowed by more than --threshold."""
    from klayers.bench.compare import KEY, match_fields
    from klayers.bench.compare import compare as compare_runs
    from klayers.bench.results import load_results
    from klayers.bench.tables import compare_table

    try:
        fields = match_fields(match) if match is not None else KEY
        base = load_results(base_path)["results"]
        new = load_results(new_path)["results"]
        changes = compare_runs(base, new, threshold, fields)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    console = Console()
    console.print(compare_table(changes, threshold))
    regressions = [change for change in changes if change.regression]
    matched = sum(change.base is not None and change.new is not None for change in changes)
    console.print(f"{matched} matching record(s); {len(regressions)} regression(s) beyond "
                  f"{threshold:.0%}")
    if regressions:
        raise SystemExit(1)


def _bench_backends(value: str | None) -> tuple[str, ...]:
    """bench's --backend: absent or all, every backend (the plan skips those not installed)."""
    try:
        return environment.named_backends(value or "all")
    except ValueError as error:
        raise click.UsageError(str(error)) from None


@cli.command()
@click.argument("model", metavar="MODEL|PATH.yaml")
@backend_option("KERAS_BACKEND, else Keras's configured one")
@click.option("--epochs", type=int, help="Epochs [default: the set-up's].")
@click.option("--batch-size", type=int, help="Batch size [default: the set-up's].")
@click.option("--dataset", metavar="NAME", help="Another data set (digits, mnist, ...).")
@click.option("--seed", type=int, help="Seed of the data and the weights [default: the set-up's].")
@click.option("--output", type=click.Path(path_type=Path),
              help="Folder of the run [default: runs/<set-up>-<date>-<time>/].")
@click.option("--resume", is_flag=True,
              help="Continue the run in --output (or the latest of MODEL) from its checkpoints.")
@click.option("--quiet", is_flag=True, help="Plain log lines instead of progress bars.")
@click.option("--distribute", metavar="data-parallel",
              help="Split each batch across devices with keras.distribution (JAX only).")
@click.option("--devices", type=int,
              help="With --distribute: how many devices (on CPU, made with XLA_FLAGS) "
                   "[default: every device JAX sees].")
@threads_option("Threads per worker [default: the usable cores].")
def train(model: str, **options: Any) -> None:
    """Train a reference model (configs/train/MODEL.yaml, or a YAML file) on each backend.

    Each backend trains in a worker subprocess of its own, one after another, from the same
    seed and data; a table compares test figures and speed. The run's folder holds
    results.json, learning_curves.png and, per backend, model.keras, history.csv and the
    checkpoint of the last epoch.
    """
    from klayers.train import run as training
    from klayers.train.display import PlainDisplay, RichDisplay, results_table

    quiet = options.pop("quiet")
    try:
        plan = training.plan_training(model, **options)
    except training.TrainError as error:
        raise click.ClickException(str(error)) from None
    console = Console()
    verb = "Resuming" if plan.resume else "Training"
    console.print(f"{verb} {escape(plan.config.name)} on {', '.join(plan.backends)}; "
                  f"output in {escape(str(plan.output))}/")
    try:
        total_epochs = plan.config.epochs * len(plan.backends)
        with PlainDisplay(console) if quiet else RichDisplay(console, total_epochs) as display:
            outcome = training.run_training(plan, display)
    except training.TrainError as error:
        raise click.ClickException(str(error)) from None
    console.print(results_table(outcome.document))
    console.print(f"Written to {escape(str(plan.output))}/: {training.RESULTS_FILE}, "
                  f"{training.CHART_FILE}, and per backend model.keras, history.csv, "
                  "checkpoint.json")
    if outcome.interrupted:
        console.print(f"[yellow]Interrupted.[/] Continue with: klayers train {escape(model)} "
                      f"--output {escape(str(plan.output))} --resume")
        raise SystemExit(130)
    if outcome.failed:
        raise SystemExit(1)


@cli.command()
@click.argument("model_path", metavar="PATH/model.keras", type=click.Path(path_type=Path))
@backend_option("KERAS_BACKEND, else Keras's configured one")
@click.option("--tolerance", type=click.FloatRange(min=0), show_default=True,
              default=0.005, help="Largest difference of the test figure between backends.")
@threads_option("Threads per worker [default: the usable cores].")
def evaluate(model_path: Path, backends: str | None, tolerance: float,
             threads: int | None) -> None:
    """Evaluate a model saved by `klayers train` on its test split, under each backend.

    The data set and seed come from the model.json beside the model. Exits with 1 when the
    backends' test figures differ by more than --tolerance.
    """
    from klayers.train import run as training
    from klayers.train.display import PlainDisplay, evaluation_table

    try:
        plan = training.plan_evaluation(model_path, backends, threads)
    except training.TrainError as error:
        raise click.ClickException(str(error)) from None
    console = Console()
    records = training.run_evaluation(plan, PlainDisplay(console))
    console.print(evaluation_table(records, plan.metadata, tolerance))
    metric = plan.metadata["config"]["target_metric"]
    spread = training.evaluation_spread(records, metric)
    failed = [record["backend"] for record in records if record["status"] != "ok"]
    if spread is not None:
        verdict = "the same" if spread <= tolerance else "[red]different[/]"
        console.print(f"{metric} is {verdict} on every backend: largest difference "
                      f"{spread:.2g} (tolerance {tolerance:g})")
    if failed or (spread is not None and spread > tolerance):
        raise SystemExit(1)
