"""`klayers bench`, `report` and `compare`: suites, orchestration, files, interruption.

Suites, plans, files, reports and comparisons: pure functions and the command on a fake worker
(FAKE_WORKER below, a temporary script that speaks the worker's protocol through
klayers.bench.protocol), so they are fast and never depend on timing figures.
test_real_tiny_bench_run runs one real tiny benchmark, under the jax test process only. The
tests after it call the real worker's functions (klayers.bench.worker.measure) in this
process: Keras baselines, interleaved timing, grouping, paired ratios, training steps and
shared inputs.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from klayers.bench import plan as benchmark
from klayers.bench import run as orchestrator
from klayers.bench import suites
from klayers.bench.results import CSV_COLUMNS, load_results, read_log, roofline_fraction
from klayers.bench.run import Settings
from klayers.main import cli

# Speaks the worker protocol: a "ready" line, then one record per measurement. The layer name
# picks the behaviour: "Crash" exits with an error, "Hang" sleeps, anything else measures.
FAKE_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from klayers.bench.protocol import Job, Record
    job = Job.from_json(sys.stdin.read())
    if os.environ.get("FAKE_BROKEN"):
        sys.exit("ImportError: fake broken install")
    print("a banner a framework printed")
    print(json.dumps({"event": "ready", "backend": os.environ["KERAS_BACKEND"],
                      "keras_version": "3.0", "backend_version": "1.0",
                      "peak_gflops": {"cpu:0": 100.0},
                      "peak_gbytes_per_s": {"cpu:0": 10.0}}), flush=True)
    for m in job.measurements:
        if m.layer == "Crash":
            print("Traceback: fake crash in", m.mode, file=sys.stderr)
            sys.exit(3)
        if m.layer == "Hang":
            time.sleep(600)
        latency = {"median": 2.0, "p25": 1.9, "p75": 2.1, "iqr": 0.2, "min": 1.8, "max": 3.0,
                   "count": 10}
        print(Record.empty(m, os.environ["KERAS_BACKEND"], status="ok", first_call_s=0.5,
                           latency_ms=latency, rounds=10, throughput=m.batch_size / 0.002,
                           peak_memory_mb=1.0, jit_compile=True).to_json(), flush=True)
""")


@pytest.fixture
def fake_worker(tmp_path):
    path = tmp_path / "fake_worker.py"
    path.write_text(FAKE_WORKER)
    return [sys.executable, str(path)]


def case(layer="Dense", modes=("predict", "train"), keras_name="Dense"):
    return suites.Case(layer, {"units": 4}, (8,), batch_sizes=(2,), modes=modes,
                       keras_name=keras_name)


def cpu_report(backend):
    return {"backend": backend, "status": "ok", "error": None,
            "devices": [{"name": "cpu:0" if backend != "torch" else "cpu", "kind": "cpu"}]}


def invoke(*args):
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result




# Suites


@pytest.mark.parametrize("name", ["quick", "standard", "full"])
def test_shipped_suites_load(name):
    suite = suites.load_suite(name)
    assert suite.cases
    assert all(case.modes and case.batch_sizes for case in suite.cases)


def test_standard_suite_covers_the_catalogue_at_two_sizes():
    names = [record.name for record in suites.catalog_records()]
    cases = suites.load_suite("standard").cases
    assert all(sum(case.layer == name for case in cases) >= 2 for name in names)


def test_catalog_cases_scale_the_length_bounds_with_the_input():
    scaled = [case for case in suites.load_suite("standard").cases
              if case.config.get("sequence_length")]
    assert scaled
    for case in scaled:
        assert case.input_shape[0] <= case.config["sequence_length"]


def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cases: [\n", "is not valid YAML"),
        ("cases:\n  - layer: Dnse\n    input_shape: [8]\n", "cases[0].layer: unknown layer 'Dnse'"),
        ("cases:\n  - layer: dense\n    input_shape: [8]\n", "did you mean 'Dense'"),
        ("cases:\n  - layer: Dense\n    input_shape: [0]\n", "cases[0].input_shape"),
        ("cases:\n  - layer: Dense\n    input_shape: [8]\n    modes: [fit]\n", "'fit'"),
        ("cases:\n  - layer: Dense\n    input_shape: [8]\n    colour: red\n", "'colour'"),
        ("cases: []\n", "no cases"),
        ("cases:\n  - layer: Dense\n    input_shape: [8]\n    quantize: int3\n",
         "cases[0].quantize: unknown quantization mode 'int3'"),
    ],
    ids=["yaml", "unknown-layer", "case", "shape", "mode", "key", "empty", "quantize"],
)
@pytest.mark.once
def test_bad_suite_is_a_one_line_error_naming_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    result = invoke("bench", "--suite", path)
    assert result.exit_code == 2
    assert expected in result.output
    assert "suite.yaml" in result.output
    assert "Traceback" not in result.output


def test_layer_glob_selects_cases():
    cases = (case("Dense"), case("Conv2D"), case("Conv1D"))
    assert [c.layer for c in suites.select(cases, ("Conv*",))] == ["Conv2D", "Conv1D"]
    assert suites.select(cases, ()) == cases


@pytest.mark.once
def test_layer_filter_matching_nothing_is_an_error():
    result = invoke("bench", "--layer", "NoSuchLayer*")
    assert result.exit_code == 2
    assert "NoSuchLayer*" in result.output


@pytest.mark.once
def test_custom_arguments_are_checked():
    result = invoke("bench", "--custom", "pkg.mod:Layer", "--kwargs", "{bad", "--input-shape", "8")
    assert result.exit_code == 2 and "--kwargs is not JSON" in result.output
    result = invoke("bench", "--custom", "no-colon", "--input-shape", "8")
    assert result.exit_code == 2 and "--custom" in result.output
    assert suites.parse_input_shape("8,16;4,16") == ((8, 16), (4, 16))


def test_measurements_add_native_only_on_torch_and_keras_only_where_it_exists():
    cases = (case(modes=("predict",)), case("Residual", modes=("predict",), keras_name=None))
    on_jax = suites.measurements(cases, "jax", ["cpu:0"], ("keras", "native"))
    assert [(m.case.layer, m.implementation) for m in on_jax] == [
        ("Dense", "keraslayers"), ("Dense", "keras"), ("Residual", "keraslayers")]
    on_torch = suites.measurements(cases, "torch", ["cpu:0"], ("keras", "native"))
    assert ("Dense", "native") in [(m.case.layer, m.implementation) for m in on_torch]
    assert [m.index for m in on_torch] == list(range(len(on_torch)))


# Planning: missing backends and devices


def test_missing_backend_and_device_are_skipped_with_a_reason():
    reports = [cpu_report("jax"),
               {"backend": "torch", "status": "not installed", "error": None, "devices": []},
               {"backend": "tensorflow", "status": "error", "error": "boom", "devices": []}]
    plans, skipped = benchmark.plan([case()], reports, (), ("keras",))
    assert [p.backend for p in plans] == ["jax"]
    assert "skipping torch: not installed" in skipped
    assert "skipping tensorflow: boom" in skipped
    plans, skipped = benchmark.plan([case()], [cpu_report("jax")], ("gpu",), ("keras",))
    assert plans == [] and "no device matches gpu" in skipped[0]


def test_device_names_are_what_keras_device_takes():
    assert benchmark.device_name({"name": "cpu", "kind": "cpu"}) == "cpu:0"
    assert benchmark.device_name({"name": "cuda:1", "kind": "gpu"}) == "gpu:1"
    assert benchmark.device_name({"name": "GPU:0", "kind": "gpu"}) == "gpu:0"


# Orchestration with a fake worker


def run_fake(cases, command, backends=("jax",), timeout=30.0, tmp_path=None):
    plans, _ = benchmark.plan(cases, [cpu_report(b) for b in backends], (), ("keras",))
    settings = Settings(min_time=0.01, min_rounds=1, threads=1, timeout=timeout)
    return benchmark.run_benchmark(plans, settings, tmp_path, {"suite": "test"}, command=command)


@pytest.mark.once
def test_a_crashing_case_is_recorded_and_the_run_goes_on(tmp_path, fake_worker):
    outcome = run_fake([case("Dense"), case("Crash"), case("Dense")], fake_worker,
                       tmp_path=tmp_path)
    statuses = [(r["layer"], r["implementation"], r["mode"], r["status"]) for r in outcome.records]
    # The crash costs one measurement; a fresh worker measures the rest, the crash case's
    # other measurements included (and they crash in turn).
    assert len(statuses) == 12
    crashed = [r for r in outcome.records if r["layer"] == "Crash"]
    assert all(r["status"] == "error" for r in crashed)
    assert "exit code 3" in crashed[0]["error"] and "fake crash" in crashed[0]["error"]
    assert all(r["status"] == "ok" for r in outcome.records if r["layer"] == "Dense")


@pytest.mark.once
def test_a_hanging_case_times_out(tmp_path, fake_worker):
    outcome = run_fake([case("Hang", modes=("predict",)), case("Dense", modes=("predict",))],
                       fake_worker, timeout=1.0, tmp_path=tmp_path)
    by_layer = {(r["layer"], r["implementation"]): r for r in outcome.records}
    assert by_layer[("Hang", "keraslayers")]["status"] == "timeout"
    assert "no result after 1 s" in by_layer[("Hang", "keraslayers")]["error"]
    assert by_layer[("Dense", "keraslayers")]["status"] == "ok"


@pytest.mark.once
def test_a_worker_that_breaks_before_it_is_ready_fails_its_backend(tmp_path, fake_worker,
                                                                   monkeypatch):
    monkeypatch.setenv("FAKE_BROKEN", "1")
    outcome = run_fake([case()], fake_worker, tmp_path=tmp_path)
    assert outcome.records and all(r["status"] == "error" for r in outcome.records)
    assert "fake broken install" in outcome.records[0]["error"]


@pytest.mark.once
def test_a_missing_worker_executable_is_an_error_record(tmp_path):
    outcome = run_fake([case(modes=("predict",))], ["/nonexistent/python"], tmp_path=tmp_path)
    assert all("could not start" in r["error"] for r in outcome.records)


def test_workers_get_the_same_thread_settings_for_every_backend():
    settings = Settings(threads=3)
    envs = [orchestrator.worker_environment(b, settings) for b in ("jax", "torch")]
    assert envs[0]["OMP_NUM_THREADS"] == envs[1]["OMP_NUM_THREADS"] == "3"
    assert envs[0]["KERAS_BACKEND"] == "jax" and envs[1]["KERAS_BACKEND"] == "torch"


# Files


@pytest.mark.once
def test_files_hold_the_records_and_environment(tmp_path, fake_worker):
    outcome = run_fake([case()], fake_worker, backends=("jax", "torch"), tmp_path=tmp_path)
    names = {path.name for path in tmp_path.iterdir()}
    assert {"results.json", "results.csv", "results.jsonl", "report.md", "report.html",
            "throughput.png", "ratio_heatmap.png", "family_ratios.png", "roofline_jax.png",
            "roofline_torch.png"} <= names
    assert not [name for name in names if name.endswith(".tmp")]
    document = load_results(tmp_path / "results.json")
    assert document["environment"]["machine_peak_gflops"] == {"cpu:0": 100.0}
    assert document["environment"]["machine_peak_gbytes_per_s"] == {"cpu:0": 10.0}
    assert document["environment"]["peak_gbytes_per_s"]["torch"] == {"cpu:0": 10.0}
    assert document["environment"]["interrupted"] is False
    required = {"layer", "implementation", "backend", "device", "dtype", "mode", "batch_size",
                "input_shape", "throughput", "latency_ms", "first_call_s", "gflops",
                "peak_fraction", "bytes", "gbytes_per_s", "roofline_fraction",
                "peak_memory_mb", "status", "error"}
    assert len(document["results"]) == len(outcome.records) == 8
    for record in document["results"]:
        assert required <= set(record)
        assert set(record["latency_ms"]) >= {"median", "p25", "p75"}
        # Dense(4) on 8 inputs, batch 2: 2*2*8*4 + 2*4 = 136 FLOPs forward, in 2 ms; a training
        # step is 3 forward passes but the input's gradient (2*2*8*4).
        flops = 3 * 136 - 2 * 2 * 8 * 4 if record["mode"] == "train" else 136
        assert record["gflops"] == pytest.approx(flops / 2e-3 / 1e9)
        assert record["peak_fraction"] == pytest.approx(record["gflops"] / 100.0)
        # Its minimum traffic (tests/test_traffic.py counts it by hand): 240 bytes forward,
        # 1008 a training step, for ours and Keras's alike. Far below the ridge
        # (100 GFLOP/s over 10 GB/s), the bound is the bandwidth's.
        moved = 1008 if record["mode"] == "train" else 240
        assert record["bytes"] == moved
        assert record["gbytes_per_s"] == pytest.approx(moved / 2e-3 / 1e9)
        assert record["roofline_fraction"] == pytest.approx(record["gbytes_per_s"] / 10.0)
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header.split(",") == list(CSV_COLUMNS)
    assert len(read_log(tmp_path / "results.jsonl")) == 8
    report = (tmp_path / "report.md").read_text()
    assert "Dense(units=4) on 8" in report and "jax 1.00x" in report
    assert "0.00012 GB/s (0.0012% of roofline)" in report
    assert "![roofline_torch](roofline_torch.png)" in report
    assert "machine (best backend): cpu:0 10" in report
    # The farthest from their roofline: ours only, lowest fraction first (predict moves
    # 240 bytes in the same 2 ms as train's 1008).
    farthest = report.split("## Farthest from the roofline")[1].split("## ")[0]
    rows = [line for line in farthest.splitlines() if line.startswith("| Dense")]
    assert len(rows) == 4 and all("keras" not in row.split("|")[2] for row in rows)
    assert "| predict |" in rows[0] and "| train |" in rows[-1]


def test_roofline_fraction_is_the_bound_of_the_compute_roof_or_the_bandwidth_slope():
    # 100 GFLOP/s and 10 GB/s: the ridge at 10 FLOP/byte.
    compute_bound = {"gflops": 50.0, "gbytes_per_s": 1.0}  # 50 FLOP/byte
    assert roofline_fraction(compute_bound, 100.0, 10.0) == pytest.approx(0.5)
    memory_bound = {"gflops": 4.0, "gbytes_per_s": 2.0}  # 2 FLOP/byte: the bound is 20 GFLOP/s
    assert roofline_fraction(memory_bound, 100.0, 10.0) == pytest.approx(4.0 / 20.0)
    without_flops = {"gflops": None, "gbytes_per_s": 5.0}
    assert roofline_fraction(without_flops, 100.0, 10.0) == pytest.approx(0.5)
    assert roofline_fraction(without_flops, None, 10.0) == pytest.approx(0.5)
    assert roofline_fraction(memory_bound, 100.0, None) is None  # a run without the probe
    assert roofline_fraction({"gflops": 4.0, "gbytes_per_s": None}, 100.0, 10.0) is None


@pytest.mark.once
def test_report_renders_an_old_run_without_bandwidth_or_bytes(tmp_path, fake_worker):
    run_fake([case()], fake_worker, tmp_path=tmp_path)
    document = json.loads((tmp_path / "results.json").read_text())
    for key in ("peak_gbytes_per_s", "machine_peak_gbytes_per_s"):
        del document["environment"][key]
    for record in document["results"]:
        for key in ("bytes", "gbytes_per_s", "roofline_fraction"):
            del record[key]
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text(json.dumps(document))
    result = invoke("report", str(old))
    assert result.exit_code == 0, result.output
    report = (old / "report.md").read_text()
    assert "Dense(units=4) on 8" in report and "GFLOP/s" in report
    # Old runs have no bandwidth: the GB/s lines and the roofline charts are left out.
    assert "% of roofline" not in report and "![roofline" not in report
    assert "Farthest from the roofline" not in report
    assert "Memory bandwidth GB/s (float32 y = x * a, bytes read + written): -" in report
    assert not list(old.glob("roofline_*.png"))
    assert "alt='roofline" not in (old / "report.html").read_text()


@pytest.mark.once
def test_report_renders_a_saved_run(tmp_path, fake_worker):
    run_fake([case()], fake_worker, tmp_path=tmp_path)
    (tmp_path / "report.md").unlink()
    result = invoke("report", str(tmp_path / "results.json"))
    assert result.exit_code == 0
    assert "Dense(units=4) on 8" in result.output
    assert (tmp_path / "report.md").exists()


@pytest.mark.once
def test_report_renders_from_results_jsonl_alone(tmp_path, fake_worker):
    # A run killed before it wrote results.json: its results.jsonl alone is enough.
    run_dir = tmp_path / "run"
    run_fake([case()], fake_worker, tmp_path=run_dir)
    saved = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").unlink()
    (run_dir / "report.md").unlink()
    from_log = load_results(run_dir)
    assert from_log["results"] == saved["results"]
    assert from_log["environment"]["machine_peak_gflops"] == saved["environment"][
        "machine_peak_gflops"]
    assert from_log["environment"]["suite"] == saved["environment"]["suite"]
    result = invoke("report", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "Dense(units=4) on 8" in result.output
    assert (run_dir / "report.md").exists()
    assert invoke("report", str(run_dir / "results.jsonl")).exit_code == 0


INTERRUPTED_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from klayers.bench import plan as benchmark
    from klayers.bench import suites
    from klayers.bench.run import Settings
    cases = [suites.Case(name, {"units": 4}, (8,), batch_sizes=(2,), keras_name="Dense")
             for name in ("Dense", "Hang")]
    report = {"backend": "jax", "status": "ok", "devices": [{"name": "cpu:0", "kind": "cpu"}]}
    plans, _ = benchmark.plan(cases, [report], (), ("keras",))
    outcome = benchmark.run_benchmark(plans, Settings(timeout=600), Path(sys.argv[1]),
                                      {"suite": "test"}, command=sys.argv[2:])
    sys.exit(130 if outcome.interrupted else 0)
""")


@pytest.mark.once
def test_an_interrupted_run_keeps_what_it_measured(tmp_path, fake_worker):
    script = tmp_path / "run.py"
    script.write_text(INTERRUPTED_RUN)
    output = tmp_path / "out"
    run = subprocess.Popen([sys.executable, str(script), str(output), *fake_worker])
    log = output / "results.jsonl"
    # Generous: on a loaded 2-core machine (pytest's other worker compiling) the fake worker's
    # four records took over 30 s; the loop ends as soon as they are there.
    deadline = time.monotonic() + 180
    # Dense gives 4 records, then the Hang case hangs: interrupt it there.
    while time.monotonic() < deadline and not (
        log.exists() and len(read_log(log)) >= 4
    ):
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGINT)
    assert run.wait(timeout=60) == 130
    document = json.loads((output / "results.json").read_text())
    assert document["environment"]["interrupted"] is True
    assert len(document["results"]) == 4
    assert all(record["layer"] == "Dense" for record in document["results"])
    assert not [path for path in output.iterdir() if path.name.endswith(".tmp")]


# compare


def save_run(path, medians, statuses=None, device="cpu:0"):
    records = []
    for number, median in enumerate(medians):
        records.append({"case": f"case {number}", "layer": "Dense", "implementation": "keraslayers",
                        "backend": "jax", "device": device, "dtype": "float32",
                        "mode": "predict", "batch_size": 32,
                        "status": (statuses or {}).get(number, "ok"),
                        "latency_ms": {"median": median, "p25": median, "p75": median,
                                       "iqr": 0.0}})
    path.write_text(json.dumps({"environment": {}, "results": records}))
    return str(path)


@pytest.mark.once
def test_compare_exit_code_follows_the_threshold(tmp_path):
    base = save_run(tmp_path / "base.json", [1.0, 1.0])
    same = save_run(tmp_path / "same.json", [1.05, 0.5])
    slower = save_run(tmp_path / "slower.json", [1.0, 1.2])
    assert invoke("compare", base, same).exit_code == 0
    result = invoke("compare", base, slower)
    assert result.exit_code == 1
    assert "slower" in result.output and "+20.0%" in result.output
    assert invoke("compare", base, slower, "--threshold", "0.5").exit_code == 0


@pytest.mark.once
def test_compare_counts_a_newly_failing_case_as_a_regression(tmp_path):
    base = save_run(tmp_path / "base.json", [1.0])
    failed = save_run(tmp_path / "failed.json", [1.0], statuses={0: "error"})
    assert invoke("compare", base, failed).exit_code == 1
    assert invoke("compare", failed, base).exit_code == 0


@pytest.mark.once
def test_compare_matches_records_across_devices_on_the_fields_asked(tmp_path):
    cpu = save_run(tmp_path / "cpu.json", [4.0, 4.0])
    gpu = save_run(tmp_path / "gpu.json", [1.0, 5.0], device="gpu:0")
    # By default a device is part of what was measured: nothing matches.
    assert "0 matching record(s)" in invoke("compare", cpu, gpu).output
    result = invoke("compare", cpu, gpu, "--match", "implementation,backend,mode,batch_size")
    assert result.exit_code == 1, result.output  # case 1 is 25% slower on the GPU
    assert "2 matching record(s); 1 regression(s)" in result.output
    assert "cpu:0→gpu:0" in result.output and "-75.0%" in result.output
    result = invoke("compare", cpu, gpu, "--match", "backend,colour")
    assert result.exit_code == 2 and "unknown field 'colour'" in result.output


@pytest.mark.once
def test_compare_refuses_a_match_that_leaves_two_records_alike(tmp_path):
    run = tmp_path / "run.json"
    save_run(run, [1.0])
    document = json.loads(run.read_text())
    document["results"].append({**document["results"][0], "mode": "train"})
    run.write_text(json.dumps(document))
    result = invoke("compare", str(run), str(run), "--match", "backend")
    assert result.exit_code == 2
    assert "two records of the base run match as one" in result.output
    assert "add mode to --match" in result.output


@pytest.mark.once
def test_report_merges_runs_of_several_machines(tmp_path, fake_worker):
    laptop, server = tmp_path / "laptop", tmp_path / "server"
    for folder in (laptop, server):
        run_fake([case()], fake_worker, tmp_path=folder)
    assert invoke("report", str(laptop), str(server)).exit_code == 2  # where to?
    result = invoke("report", str(laptop), str(server / "results.json"),
                    "--output", str(tmp_path / "both"))
    assert result.exit_code == 0, result.output
    report = (tmp_path / "both" / "report.md").read_text()
    # One column per backend and run, the runs in the order given.
    header = next(line for line in report.splitlines() if line.startswith("| device"))
    assert header.index("jax@laptop") < header.index("jax@server")
    assert "laptop: Suite" in report and "server: Suite" in report
    # A roofline chart per run's backend, under that run's measured peaks.
    assert {"roofline_jax@laptop.png", "roofline_jax@server.png"} <= {
        path.name for path in (tmp_path / "both").iterdir()}
    assert "laptop: Memory bandwidth GB/s" in report


@pytest.mark.once
def test_compare_rejects_a_file_that_is_not_results(tmp_path):
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    result = invoke("compare", str(other), str(other))
    assert result.exit_code == 2 and "not a klayers results.json" in result.output


def test_a_busy_machine_is_flagged():
    from klayers.bench.report import busy_machine_warning

    assert busy_machine_warning({"usable_cores": 2, "load_average_start": 7.0}) is not None
    assert busy_machine_warning({"usable_cores": 2, "load_average_start": 0.5,
                                 "load_average_end": 1.2}) is None
    assert busy_machine_warning({}) is None
    # Two threads on two cores keep both busy by themselves: a load of 2 is the run itself.
    two_threads = {"usable_cores": 2, "threads": {"threads": 2}}
    assert busy_machine_warning({**two_threads, "load_average_end": 2.0}) is None
    assert busy_machine_warning({**two_threads, "load_average_end": 3.0}) is not None


# One real run


@pytest.mark.once
def test_real_tiny_bench_run(tmp_path):
    suite = write(tmp_path, """
        cases:
          - layer: Dense
            config: {units: 8}
            input_shape: [16]
            batch_sizes: [4]
    """)
    output = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "klayers", "bench", "--suite", suite, "--backend", "jax",
         "--min-time", "0.01", "--min-rounds", "3", "--output", str(output)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    document = load_results(output / "results.json")
    assert document["environment"]["peak_gflops"]["jax"]["cpu:0"] > 0
    assert document["environment"]["peak_gbytes_per_s"]["jax"]["cpu:0"] > 0
    records = document["results"]
    assert {(r["implementation"], r["mode"]) for r in records} == {
        ("keraslayers", "predict"), ("keraslayers", "train"), ("keras", "predict"),
        ("keras", "train")}
    for record in records:
        assert record["status"] == "ok", record["error"]
        assert record["backend"] == "jax" and record["device"] == "cpu:0"
        assert record["throughput"] > 0 and record["latency_ms"]["median"] > 0
        assert record["rounds"] >= 3 and record["first_call_s"] > 0
        assert record["gflops"] > 0
        assert record["gbytes_per_s"] > 0 and record["roofline_fraction"] > 0
        # Keras's layer was timed interleaved with ours: a paired ratio per block of steps.
        if record["implementation"] == "keras":
            assert record["paired_speedup"]["median"] > 0
            assert record["paired_speedup"]["count"] >= 3
    for name in ("results.csv", "report.md", "report.html", "throughput.png",
                 "roofline_jax.png"):
        assert (output / name).stat().st_size > 0



def test_the_bandwidth_probe_measures_the_cpu_on_every_backend(monkeypatch):
    from klayers.bench.worker import measure as worker

    low, high = worker.BANDWIDTH_CPU_BYTES
    assert low <= worker._cpu_probe_bytes() <= high
    # The smallest arrays it allows: enough to run every step of the probe quickly.
    monkeypatch.setattr(worker, "_cpu_probe_bytes", lambda: low)
    assert worker.peak_gbytes_per_s("cpu:0") > 0


def test_keras_baseline_of_a_wrapper_wraps_keras_own_inner_layers():
    import keras

    from klayers.bench.worker import measure as worker

    case = next(case for case in suites.load_suite("standard").cases if case.layer == "RNN")
    config = worker._with_keras_inner_layers(case.config)
    cells = keras.layers.RNN.from_config(config).cell.cells
    assert [type(cell) for cell in cells] == [keras.layers.GRUCell, keras.layers.LSTMCell]
    # The klayers side keeps its own cells: the swap is for the baseline alone.
    assert case.config["cell"][0]["registered_name"] == "keraslayers>GRUCell"


def test_keras_summary_marks_missed_targets_and_keras_slow_backends():
    from klayers.bench.report import keras_summary

    def record(backend, implementation, mode, latency_ms):
        return {"case": "Dense(units=8) on 16", "device": "cpu:0", "dtype": "float32",
                "mode": mode, "batch_size": 4, "backend": backend,
                "implementation": implementation, "status": "ok",
                "throughput": 4 / latency_ms * 1e3,
                "latency_ms": {"median": latency_ms, "iqr": 0.0}}

    records = [
        # jax: Keras's layer is fast, ours 10% slower: below 0.95.
        record("jax", "keraslayers", "predict", 1.1), record("jax", "keras", "predict", 1.0),
        # torch: Keras's layer is 5x slower than on jax, ours 2x faster than it: a met dagger.
        record("torch", "keraslayers", "predict", 2.5), record("torch", "keras", "predict", 5.0),
    ]
    table = keras_summary(records)
    assert table.header[4:] == ["jax predict", "torch predict"]
    jax_cell, torch_cell = table.rows[0][4:]
    assert jax_cell.lines == ["0.91x ✗"] and jax_cell.failed
    assert torch_cell.lines == ["2.00x †"] and not torch_cell.failed
    assert table.notes == [
        "1 of 2 ratios at least 0.95x.",
        "† Keras's own layer ran at most 1/3 as fast as on its best backend: 1 cells, "
        "1 of them at least 1.5x.",
    ]
    assert keras_summary([r for r in records if r["implementation"] != "keras"]) is None


def _busy_step(name, order, seconds=1e-5, fail_on_call=None):
    """A step that records its name and takes `seconds`; it raises on call `fail_on_call`."""
    import time

    calls = []

    def step():
        calls.append(name)
        if len(calls) == fail_on_call:
            raise RuntimeError(f"{name} broke")
        order.append(name)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return step


def test_implementations_of_a_case_are_timed_in_alternating_blocks():
    from klayers.bench.worker import measure as worker

    order = []
    steps = {0: _busy_step("ours", order), 1: _busy_step("keras", order)}
    # Blocks of 3 steps of ours against 1 of the baseline (ours is estimated 3x faster); the
    # rounds go on until both have 4 steps at least.
    samples, medians, failures = worker._time_interleaved(
        steps, {0: 1e-7 / 3, 1: 1e-7}, min_time=1e-6, min_rounds=4)
    assert order == ["ours"] * 3 + ["keras"] + ["ours"] * 3 + ["keras"] + \
        (["ours"] * 3 + ["keras"]) * 2
    assert [len(samples[0]), len(samples[1])] == [12, 4]
    # One median per block and step: what the paired ratios are made of.
    assert [len(medians[0]), len(medians[1])] == [4, 4] and not failures


def test_a_step_failing_midway_fails_itself_and_the_others_go_on():
    from klayers.bench.worker import measure as worker

    order = []
    steps = {0: _busy_step("ours", order), 1: _busy_step("keras", order, fail_on_call=2)}
    samples, medians, failures = worker._time_interleaved(
        steps, {0: 1e-7, 1: 1e-7}, min_time=1e-6, min_rounds=3)
    assert list(failures) == [1] and str(failures[1]) == "keras broke"
    assert list(samples) == [0] and len(samples[0]) == 3 and len(medians[0]) == 3


def test_measurements_of_one_case_are_grouped_and_others_are_not():
    from klayers.bench.protocol import MeasurementJob
    from klayers.bench.worker import measure as worker

    def job(implementation, mode="predict", batch=4):
        return MeasurementJob(index=0, layer="Dense", kind="layer", keras_name="Dense",
                              config={"units": 8}, input_shape=[16], input_dtype="float32",
                              device="cpu:0", dtype="float32", mode=mode, batch_size=batch,
                              implementation=implementation)

    jobs = [job("keraslayers"), job("keras"), job("keraslayers", "train"), job("keras", "train"),
            job("keraslayers", batch=8)]
    assert [[j.implementation for j in group] for group in worker.groups(jobs)] == [
        ["keraslayers", "keras"], ["keraslayers", "keras"], ["keraslayers"]]


def test_the_ratio_to_a_baseline_is_the_paired_one_when_there_is_one():
    from klayers.bench.results import Row

    def record(median, paired=None):
        return {"status": "ok", "latency_ms": {"median": median, "iqr": 0.0},
                "paired_speedup": paired}

    row = Row("case", "cpu:0", "float32", "predict", 4, ours={"jax": record(1.0)},
              baselines={("jax", "keras"): record(2.0, {"median": 1.5, "iqr": 0.2})})
    assert row.baseline_ratio("jax", "keras") == (1.5, 0.1)
    # A run from before pairing: the ratio of the medians.
    row.baselines[("jax", "keras")] = record(2.0)
    assert row.baseline_ratio("jax", "keras") == (2.0, 0.0)


def test_training_step_of_a_layer_without_weights_runs_its_backward_pass():
    from dataclasses import replace

    from klayers.bench.protocol import MeasurementJob
    from klayers.bench.worker import measure as worker

    job = MeasurementJob(
        implementation="keraslayers", layer="MaxPooling2D", keras_name="MaxPooling2D",
        kind="catalog", config={"pool_size": 2}, input_shape=[4, 4, 2], input_dtype="float32",
        dtype="float32", mode="train", batch_size=2, index=0, device="cpu:0")
    model, _, _ = worker._keras_model(job)
    # The learned input scale is the only weight: its gradient flows back through the pooling.
    assert [weight.name for weight in model.trainable_weights] == ["scale"]
    model, _, _ = worker._keras_model(replace(job, mode="predict"))
    assert not model.weights
    # A layer whose output ignores its input's values has no training step to time.
    with pytest.raises(worker._Skipped, match="shape alone"):
        worker._keras_model(replace(job, layer="SinePositionEncoding", keras_name=None,
                                    config={}, input_shape=[4, 2]))


def test_implementations_of_a_case_read_the_same_input_tensors(monkeypatch):
    from klayers.bench.worker import measure as worker

    drawn = []
    draw = worker._inputs
    monkeypatch.setattr(worker, "_inputs", lambda *args: drawn.append(args[1]) or draw(*args))
    job = {"layer": "GlobalMaxPooling2D", "keras_name": "GlobalMaxPooling2D", "kind": "catalog",
           "config": {}, "input_shape": [4, 4, 2], "input_dtype": "float32", "index": 0,
           "dtype": "float32", "mode": "predict", "batch_size": 2, "device": "cpu:0"}
    from klayers.bench.protocol import MeasurementJob, WorkerSettings

    jobs = [MeasurementJob(**job, implementation="keraslayers"),
            MeasurementJob(**job, implementation="keras")]
    records = worker.measure_group(jobs, WorkerSettings(min_time=0.01, min_rounds=2,
                                                        torch_compile=False))
    assert [record["status"] for record in records] == ["ok", "ok"]
    # Drawn and converted once, for both: the two layers read the very same buffer.
    assert drawn == [[(4, 4, 2)]]


def test_a_suite_can_name_any_layer_class_and_a_saved_model(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.keras").write_bytes(b"")  # parsing checks that it exists
    suite = tmp_path / "mine.yaml"
    suite.write_text(textwrap.dedent("""
        defaults: {batch_sizes: [4], modes: [predict]}
        cases:
          - layer: keras.layers:EinsumDense
            config: {equation: "abc,cd->abd", output_shape: [null, 8], bias_axes: d}
            input_shape: [5, 4]
          - {model: models/tiny.keras, batch_sizes: [2, 8]}
    """))
    custom, model = suites.load_suite(str(suite)).cases
    assert (custom.kind, custom.keras_name, custom.batch_sizes) == ("custom", "EinsumDense", (4,))
    assert (model.kind, model.layer, model.batch_sizes) == (
        "model", str((tmp_path / "models" / "tiny.keras").resolve()), (2, 8))
    planned = suites.measurements((custom, model), "jax", ["cpu:0"], ("keras",))
    assert [m.implementation for m in planned] == ["custom", "keras", "model", "model"]


@pytest.mark.parametrize("case, message", [
    ({"model": "missing.keras"}, r"cases\[0\]\.model: no \.keras file at .*missing\.keras"),
    ({"model": "tiny.keras", "config": {}}, r"unknown key 'config' in a model case"),
    ({"layer": "keras.layers:", "input_shape": [4]},
     r"cases\[0\]\.layer must be 'package.module:ClassName'"),
    ({"layer": "Dence", "input_shape": [4]}, r"unknown layer 'Dence'.*package.module:Class"),
])
def test_a_suite_case_that_cannot_run_is_refused_with_its_place(tmp_path, case, message):
    (tmp_path / "tiny.keras").write_bytes(b"")
    suite = tmp_path / "bad.yaml"
    suite.write_text(json.dumps({"cases": [case]}))
    with pytest.raises(suites.SuiteError, match=message):
        suites.load_suite(str(suite))


def test_a_layer_whose_config_leaves_an_output_size_to_its_input_trains():
    # EinsumDense's output_shape may hold None: the symbolic model does not know that size.
    from klayers.bench.protocol import MeasurementJob, WorkerSettings
    from klayers.bench.worker import measure as worker

    job = MeasurementJob(
        implementation="custom", layer="keras.layers:EinsumDense", keras_name=None,
        kind="custom", config={"equation": "abc,cd->abd", "output_shape": [None, 8],
                               "bias_axes": "d"},
        input_shape=[5, 4], input_dtype="float32", dtype="float32", mode="train",
        batch_size=2, index=0, device="cpu:0")
    records = worker.measure_group([job], WorkerSettings(min_time=0.01, min_rounds=2))
    assert [(record["status"], record["error"]) for record in records] == [("ok", None)]


# -- quantized cases ------------------------------------------------------------------------


def test_quantize_key_and_option_mark_the_cases_and_their_labels(tmp_path):
    suite = suites.load_suite(write(tmp_path, """
        cases:
          - {layer: Dense, config: {units: 8}, input_shape: [16]}
          - {layer: Dense, config: {units: 8}, input_shape: [16], quantize: int4}
    """))
    plain, int4 = suite.cases
    assert (plain.quantize, int4.quantize) == (None, "int4")
    assert int4.label == "Dense(units=8) on 16, int4" and plain.label != int4.label
    assert [case.quantize for case in suites.quantized(suite.cases, "int8")] == ["int8"] * 2
    (job,) = [m.to_job() for m in suites.measurements((int4,), "jax", ["cpu:0"], ())
              if m.mode == "predict"]
    assert job.quantize == "int4"
    result = invoke("bench", "--layer", "Dense", "--quantize", "int2")
    assert result.exit_code == 2 and "'int2'" in result.output


def _quantized_jobs(quantize, implementations=("keraslayers", "keras")):
    from klayers.bench.protocol import MeasurementJob

    return [MeasurementJob(index=i, layer="Dense", kind="catalog", keras_name="Dense",
                           config={"units": 32}, input_shape=[64], input_dtype="float32",
                           implementation=implementation, device="cpu:0", dtype="float32",
                           mode="predict", batch_size=4, quantize=quantize)
            for i, implementation in enumerate(implementations)]


# Dense(32) on 64 inputs: the float32 kernel and bias; int8's kernel in int8 and a float32
# scale per unit; int4's kernel packed two to a byte, with Keras 3.15's per-group scale, zero
# point (int8) and group index of each input (float32).
@pytest.mark.parametrize("quantize, weight_bytes", [
    (None, 64 * 32 * 4 + 32 * 4),
    ("int8", 64 * 32 + 32 * 4 + 32 * 4),
    ("int4", 64 * 32 // 2 + 32 * 4 + 32 * 4 + 32 + 64 * 4),
])
def test_a_quantized_case_times_both_layers_quantized_and_counts_their_weight_bytes(
        quantize, weight_bytes):
    from klayers.bench.protocol import WorkerSettings
    from klayers.bench.worker import measure

    records = measure.measure_group(_quantized_jobs(quantize),
                                    WorkerSettings(min_time=0.01, min_rounds=3))
    for record in records:
        assert record["status"] == "ok", record["error"]
    ours, theirs = records
    assert ours["weight_bytes"] == theirs["weight_bytes"] == weight_bytes
    assert theirs["paired_speedup"]["median"] > 0


def test_a_layer_without_a_quantized_form_is_skipped_with_the_reason():
    from klayers.bench.protocol import MeasurementJob, WorkerSettings
    from klayers.bench.worker import measure

    job = MeasurementJob(index=0, layer="LayerNormalization", kind="catalog",
                         keras_name="LayerNormalization", config={}, input_shape=[16],
                         input_dtype="float32", implementation="keraslayers", device="cpu:0",
                         dtype="float32", mode="predict", batch_size=4, quantize="int8")
    (record,) = measure.measure_group([job], WorkerSettings(min_time=0.01, min_rounds=3))
    assert record["status"] == "skipped"
    assert "no layer of LayerNormalization quantizes to int8" in record["error"]


def test_the_quantization_table_compares_with_unquantized_and_keras():
    from klayers.bench.report import quantization_table

    def record(implementation, quantize, throughput, weight_bytes, speedup=None):
        return {"layer": "Dense", "config": {"units": 8}, "input_shape": [16],
                "case": "Dense(units=8) on 16" + (f", {quantize}" if quantize else ""),
                "backend": "jax", "device": "cpu:0", "dtype": "float32", "mode": "predict",
                "batch_size": 4, "implementation": implementation, "quantize": quantize,
                "status": "ok", "throughput": throughput, "weight_bytes": weight_bytes,
                "paired_speedup": {"median": speedup} if speedup else None}

    table = quantization_table([
        record("keraslayers", None, 100.0, 4000), record("keraslayers", "int8", 150.0, 1000),
        record("keras", "int8", 140.0, 1000, speedup=1.07)])
    (row,) = [[cell.lines[0] for cell in cells] for cells in table.rows]
    assert row[0] == "Dense(units=8) on 16, int8"
    assert row[6:] == ["1.50x", "0.001 MB", "4.00x", "1.07x"]
    assert quantization_table([record("keraslayers", None, 100.0, 4000)]) is None
