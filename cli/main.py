"""The `klayers` command line: `klayers list`, `klayers info`."""

from __future__ import annotations

import json
import os
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from klayers import environment


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
