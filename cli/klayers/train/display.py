"""What `klayers train` and `klayers evaluate` show: a Rich progress bar per epoch (or plain log
lines with --quiet), fed by the workers' events, and the tables comparing the backends."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from klayers.train.run import meets_target, target_value
from klayers.train.setups import ERROR_METRICS

DESCRIPTIONS = {"mse_ratio": "test MSE / mean-image MSE", "loss": "test loss"}


def format_logs(logs: dict[str, float]) -> str:
    """Keras's order: training figures first (loss leading), then the test set's."""
    def order(name: str) -> tuple[bool, bool, str]:
        base = name.removeprefix("val_")
        return (name.startswith("val_"), base != "loss", base)

    return " - ".join(f"{name.replace('val_', 'test_')} {value:.4f}"
                      for name, value in sorted(logs.items(), key=lambda item: order(item[0])))


def describe_ready(backend: str, event: dict[str, Any]) -> str:
    devices = ", ".join(event["devices"])
    text = (f"{backend}: {event['parameters']:,} parameters; {event['num_train']:,} training, "
            f"{event['num_test']:,} test samples; {event['device_count']} device(s): {devices}")
    if "steps_per_epoch" in event:
        text += f"; {event['steps_per_epoch']} steps per epoch"
        if event["start_epoch"]:
            text += f"; resuming after epoch {event['start_epoch']} of {event['epochs']}"
    return text


class PlainDisplay:
    """--quiet: one log line per backend start and per epoch, no bars."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def starting(self, backend: str) -> None:
        self.console.print(f"{backend}: starting the worker", markup=False, highlight=False)

    def event(self, backend: str, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "ready":
            line = describe_ready(backend, event)
        elif kind in ("epoch", "fine_tune_epoch"):
            phase = "fine-tune epoch" if kind == "fine_tune_epoch" else "epoch"
            line = (f"{backend}: {phase} {event['epoch']}/{event['epochs']}: "
                    f"{format_logs(event['logs'])} ({event['train_time_s']:.2f} s)")
        else:
            return
        self.console.print(line, markup=False, highlight=False)

    def failed(self, backend: str, message: str) -> None:
        self.console.print(f"{backend}: failed: {message}", markup=False, highlight=False)

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None


class RichDisplay:
    """A progress bar per epoch, with its loss and metrics as they come in, under one bar for
    the whole run (every backend's epochs) that says how long is left."""

    def __init__(self, console: Console, total_epochs: int | None = None) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            TextColumn("{task.fields[logs]}"), console=console)
        self.tasks: dict[tuple[str, int], Any] = {}
        self.epochs: dict[str, int] = {}
        self.steps: dict[str, int] = {}
        self.starting_task: Any = None
        # Epochs of every backend, done or in part: the estimate of what is left.
        self.run_task = None if total_epochs is None else self.progress.add_task(
            "all backends, epochs", total=total_epochs, logs="")
        self.done: dict[str, float] = {}

    def __enter__(self) -> RichDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.progress.__exit__(*exc_info)

    def _run_progress(self, backend: str, epochs_done: float) -> None:
        self.done[backend] = epochs_done
        if self.run_task is not None:
            self.progress.update(self.run_task, completed=sum(self.done.values()))

    def starting(self, backend: str) -> None:
        self.starting_task = self.progress.add_task(
            f"{backend}: starting (import, data, model)", total=None, logs="")

    def _end_starting(self) -> None:
        if self.starting_task is not None:
            self.progress.remove_task(self.starting_task)
            self.starting_task = None

    def event(self, backend: str, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "ready":
            self._end_starting()
            if "epochs" in event:
                self.epochs[backend] = event["epochs"]
                self.steps[backend] = event["steps_per_epoch"]
                self._run_progress(backend, event["start_epoch"])
            self.progress.console.print(escape(describe_ready(backend, event)))
        elif kind == "batch" and event.get("phase"):
            return  # a fine-tune's steps: its epochs are logged as they end
        elif kind == "fine_tune_epoch":
            self.progress.console.print(escape(
                f"{backend}: fine-tune epoch {event['epoch']}/{event['epochs']}: "
                f"{format_logs(event['logs'])} ({event['train_time_s']:.2f} s)"))
        elif kind == "batch":
            task = self._task(backend, event["epoch"], event["steps"])
            self.progress.update(task, completed=event["step"],
                                 logs=escape(format_logs(event["logs"])))
            self._run_progress(backend, event["epoch"] - 1 + event["step"] / event["steps"])
        elif kind == "epoch":
            task = self._task(backend, event["epoch"], self.steps.get(backend))
            self.progress.update(task, completed=self.steps.get(backend),
                                 logs=escape(f"{format_logs(event['logs'])} "
                                             f"({event['train_time_s']:.2f} s)"))
            self.progress.stop_task(task)
            self._run_progress(backend, event["epoch"])
        elif kind == "done":
            self._end_starting()

    def _task(self, backend: str, epoch: int, steps: int | None) -> Any:
        key = (backend, epoch)
        if key not in self.tasks:
            total = self.epochs.get(backend, "?")
            self.tasks[key] = self.progress.add_task(
                f"{backend} {epoch}/{total}", total=steps, logs="")
        return self.tasks[key]

    def failed(self, backend: str, message: str) -> None:
        self._end_starting()
        self.progress.console.print(f"[red]{escape(backend)}: failed:[/] {escape(message)}")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def target_header(run: dict[str, Any]) -> str:
    metric = run["target_metric"]
    return DESCRIPTIONS.get(metric, f"test {metric}")


def target_text(run: dict[str, Any]) -> str:
    return f"target: {target_header(run)} {'<=' if run['target_is_ceiling'] else '>='} " \
        f"{run['target']:g}"


def target_cell(record: dict[str, Any], run: dict[str, Any]) -> str:
    value = target_value(record, run)
    if value is None:
        return "-"
    text = f"{value:.4f}"
    test = record["test"]
    if run["target_metric"] == "mse_ratio" and "mse" in test and "baseline_mse" in test:
        text += f" ({test['mse']:.3g}/{test['baseline_mse']:.3g})"
    return f"[green]{text} \u2713[/]" if meets_target(value, run) else f"[yellow]{text} \u2717[/]"


def results_table(document: dict[str, Any]) -> Table:
    """The backends side by side: test figure, speed, time to the first step, devices."""
    run = document["run"]
    title = (f"{run['config']['name']}: {run['model']} on {run['dataset']}, "
             f"{run['epochs']} epochs, batch {run['batch_size']}, seed {run['seed']}")
    if run["distribute"]:
        title += f", {run['distribute']}"
    table = Table(title=escape(f"{title}; {target_text(run)}"), title_justify="left")
    show_loss = run["target_metric"] != "loss"
    columns = ["backend", "devices", target_header(run)]
    columns += ["test loss"] if show_loss else []
    columns += ["s/epoch", "samples/s", "first step", "epochs", "status"]
    for name in columns:
        table.add_column(escape(name), justify="left" if name in ("backend", "status")
                         else "right")
    for record in document["results"]:
        status = record["status"]
        if status == "ok":
            status_text = "[green]ok[/]"
        elif status == "error":
            status_text = f"[red]error[/]: {escape(record['error'] or '')}"
        else:
            status_text = f"[yellow]{escape(status)}[/]"
        speed = _seconds(record["s_per_epoch"])
        if record.get("timing_includes_compile"):
            speed += "*"
        cells = [escape(record["backend"]), str(record["device_count"] or "-"),
                 target_cell(record, run)]
        if show_loss:
            loss = (record.get("test") or {}).get("loss")
            cells.append("-" if loss is None else f"{loss:.4f}")
        cells += [speed, _rate(record["samples_per_s"]),
                  _seconds(record["time_to_first_step_s"]), str(record["epochs_done"]),
                  status_text]
        table.add_row(*cells)
    table.caption = ("s/epoch: median training time per epoch after the first (* includes "
                     "compilation); first step: fit call to end of the first step, compiling "
                     "included")
    return table


def evaluation_table(records: list[dict[str, Any]], metadata: dict[str, Any],
                     tolerance: float) -> Table:
    config = metadata["config"]
    run = {"target_metric": config["target_metric"], "target": config["target"],
           "target_is_ceiling": config["target_metric"] in ERROR_METRICS}
    trained = metadata.get("test") or {}
    metric = run["target_metric"]
    table = Table(title=escape(f"{config['name']} ({config['model']}) trained on "
                               f"{metadata['trained_on']}, evaluated on the {config['dataset']} "
                               "test split"), title_justify="left")
    table.caption = target_text(run)
    for name in ("backend", target_header(run), "test loss",
                 f"vs trained ({metadata['trained_on']})", "load", "evaluate", "status"):
        table.add_column(escape(name))
    for record in records:
        if record["status"] != "ok":
            table.add_row(escape(record["backend"]), "-", "-", "-", "-", "-",
                          f"[red]error[/]: {escape(record['error'] or '')}")
            continue
        test = record["test"]
        delta = test[metric] - trained[metric] if metric in trained else None
        same = delta is not None and abs(delta) <= tolerance
        delta_text = "-" if delta is None else f"{delta:+.2g}"
        table.add_row(escape(record["backend"]), target_cell(record, run),
                      f"{test['loss']:.4f}" if "loss" in test else "-",
                      f"[green]{delta_text}[/]" if same else f"[red]{delta_text}[/]",
                      _seconds(record["load_s"]), _seconds(record["evaluate_s"]),
                      "[green]ok[/]")
    return table
