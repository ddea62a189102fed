"""The HTML report in a real headless browser (Chromium, through Playwright): a run of 216 cases
renders, every chart loads from the page itself (the roofline charts too), the console stays
clean, the charts fit a laptop's width, and a click on a column's header sorts its table.

Chromium comes from the Debian packages (`make test` installs it where it can); the test
needs neither keras nor a backend, so it runs in the TensorFlow test process only.
"""

import itertools
import os
import shutil

import pytest

from klayers.bench.report import write_reports
from klayers.bench.results import roofline_fraction

pytestmark = pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                                reason="keras-free: run once, in the TensorFlow test process")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAPTOP = {"width": 1366, "height": 768}
LAYERS = ("Dense", "Conv2D", "MaxPooling2D", "LSTM", "LayerNormalization", "Embedding",
          "MultiHeadAttention", "Dropout", "Conv2DTranspose")
WITHOUT_FLOPS = ("Embedding", "Dropout")
PEAKS = {"peak_gflops": {"cpu:0": 500.0}, "peak_gbytes_per_s": {"cpu:0": 20.0}}
ENVIRONMENT = {
    "suite": "browser", "python": "3.11",
    **{key: {backend: value for backend in ("jax", "tensorflow", "torch")}
       for key, value in PEAKS.items()},
    **{f"machine_{key}": value for key, value in PEAKS.items()},
}


def _record(case, layer, backend, mode, implementation, speed, number=0):
    latency = 1.0 / speed
    record = {
        "layer": layer, "case": case, "implementation": implementation, "backend": backend,
        "device": "cpu:0", "device_model": None, "dtype": "float32", "mode": mode,
        "batch_size": 32, "input_shape": [16], "config": {}, "status": "ok", "error": None,
        "first_call_s": 0.5, "rounds": 20, "throughput": 32 / latency * 1e3,
        "latency_ms": {"median": latency, "p25": latency, "p75": latency, "iqr": 0.0},
        "peak_memory_mb": 1.0, "jit_compile": None, "flops": None, "gflops": None,
        "peak_fraction": None, "noisy": False, "paired_speedup": None,
    }
    # Steps from 0.1 to 100 FLOP/byte, moving 0.1 to 100 MB.
    record["bytes"] = 10 ** (5 + number % 4)
    record["gbytes_per_s"] = record["bytes"] / latency / 1e6
    if layer not in WITHOUT_FLOPS:
        record["flops"] = record["bytes"] * 10 ** (number % 4 - 1)
        record["gflops"] = record["flops"] / latency / 1e6
    record["roofline_fraction"] = roofline_fraction(record, 500.0, 20.0)
    return record


def _records(cases=216):
    records = []
    backends = {"jax": 1.0, "tensorflow": 0.7, "torch": 0.4}
    for number in range(cases):
        layer = LAYERS[number % len(LAYERS)]
        case = f"{layer}(size={number}) on 16"
        for (backend, base), mode in itertools.product(backends.items(), ("predict", "train")):
            ratio = 0.5 + (len(records) % 13) / 4  # 0.5x to 3.5x
            records.append(_record(case, layer, backend, mode, "keraslayers", base * ratio,
                                   number))
            keras = _record(case, layer, backend, mode, "keras", base, number)
            keras["paired_speedup"] = {"median": ratio, "iqr": 0.02}
            records.append(keras)
    return records


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no chromium: `apt-get install chromium` (make test does where it can)")
    folder = tmp_path_factory.mktemp("report")
    write_reports(folder, ENVIRONMENT, _records())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport=LAPTOP)
        page.problems = []
        page.on("console", lambda message: message.type == "error"
                and page.problems.append(message.text))
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.on("requestfailed", lambda request: page.problems.append(request.url))
        page.goto((folder / "report.html").as_uri())
        page.wait_for_load_state("load")
        page.folder = folder
        yield page
        browser.close()


def test_renders_with_every_chart_loaded_and_no_console_error(page):
    assert page.title() == "klayers bench"
    images = page.evaluate("Array.from(document.images).map(image => ({source: "
                           "image.src.slice(0, 22), loaded: image.complete && "
                           "image.naturalWidth > 0, width: image.getBoundingClientRect().width}))")
    # The heatmap, the per-family view, the throughput chart and a roofline chart per
    # backend, embedded in the page.
    assert len(images) == 6
    assert all(image["loaded"] for image in images), images
    assert all(image["source"] == "data:image/png;base64," for image in images), images
    # At a laptop's width, no chart runs off the page.
    assert all(0 < image["width"] <= LAPTOP["width"] for image in images), images
    assert page.problems == []
    # 216 cases: the summary table, the roofline's farthest, and one table per case.
    assert page.locator("table").count() == 218


def test_a_laptop_screenshot_shows_the_report(page):
    from PIL import Image, ImageStat

    path = page.folder / "laptop.png"
    page.screenshot(path=str(path))
    screenshot = Image.open(path).convert("L")
    assert screenshot.size == (LAPTOP["width"], LAPTOP["height"])
    # Not a blank page: text and the first chart's colours make the grey levels vary.
    assert ImageStat.Stat(screenshot).stddev[0] > 20


def test_a_click_on_a_header_sorts_the_table(page):
    summary = page.locator("table").first
    column = summary.locator("th", has_text="jax predict")
    index = column.evaluate("header => header.cellIndex")

    def values():
        cells = summary.locator(f"tbody tr td:nth-child({index + 1})").all_inner_texts()
        return [float(text.split("x")[0]) for text in cells if text != "-"]

    column.click()
    descending = values()
    assert descending == sorted(descending, reverse=True) and len(set(descending)) > 1
    column.click()
    assert values() == sorted(descending)
