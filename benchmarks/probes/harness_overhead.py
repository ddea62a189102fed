"""What `klayers bench` adds to a step's time: the harness against a hand-written loop.

The bench times a step (`predict_on_batch` or `train_on_batch` of a one-layer model) one call
at a time, in blocks that alternate between implementations, and reports the median. This
probe builds the very same step the bench's worker builds (`measure._keras_step`: the same
model, compile settings and input tensors) and times it two ways, alternately, ROUNDS times:

- harness: `measure.measure_group` on that one measurement, as `klayers bench` runs it;
- hand: the loop a user writes, `for _ in range(n): t = perf_counter(); step(); ...`, for as
  long as the harness's minimum time, summarised by the same statistic (the median step).

Each round gives one ratio, harness median / hand median, from two timings a second apart;
the probe prints the median ratio over the rounds and its 25th-75th percentiles. Pairing by
round is what resolves a few percent on a shared machine: medians of whole runs taken minutes
apart moved by up to 20%. It also prints hand's whole-loop mean over its median, to show how
far the choice of statistic alone moves a figure.

Run: `KERAS_BACKEND=jax python benchmarks/probes/harness_overhead.py` (and tensorflow, torch),
from the repository root with the package installed (`make install`).
"""

import statistics
import time

import keras
import numpy as np

from klayers.bench.protocol import MeasurementJob, WorkerSettings
from klayers.bench.worker import measure

CASES = [  # (layer, config, input shape, batch): a few microseconds to a few milliseconds
    ("Dense", {"units": 64}, [64], 32),
    ("Dense", {"units": 1024}, [1024], 32),
    ("Conv2D", {"filters": 32, "kernel_size": 3, "padding": "same"}, [32, 32, 16], 16),
]
ROUNDS = 11
SETTINGS = WorkerSettings(min_time=0.5, min_rounds=10)


def hand_loop(step, seconds=SETTINGS.min_time, min_steps=SETTINGS.min_rounds):
    """Per-step seconds of a plain loop lasting `seconds` (and at least `min_steps` steps)."""
    times = []
    while sum(times) < seconds or len(times) < min_steps:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def main():
    print(f"backend {keras.backend.backend()}; {ROUNDS} rounds; harness / hand-written loop, "
          "median step time: median over rounds [25th-75th percentile]")
    for layer, config, shape, batch in CASES:
        for mode in ("predict", "train"):
            job = MeasurementJob(index=0, layer=layer, kind="catalog", keras_name=layer,
                                 config=config, input_shape=shape, input_dtype="float32",
                                 implementation="keraslayers", device="cpu:0",
                                 dtype="float32", mode=mode, batch_size=batch)
            step, _, _ = measure._keras_step(job, SETTINGS, {})
            hand_loop(step, seconds=0.2)  # compile and warm up, as the harness does
            ratios, medians, mean_over_median = [], [], []
            for _ in range(ROUNDS):
                (record,) = measure.measure_group([job], SETTINGS)
                times = hand_loop(step)
                hand = statistics.median(times) * 1e3
                ratios.append(record["latency_ms"]["median"] / hand)
                medians.append(hand)
                mean_over_median.append(statistics.fmean(times) * 1e3 / hand)
            low, mid, high = np.percentile(ratios, [25, 50, 75])
            print(f"{layer}({config}) on {shape} b{batch} {mode}: step {np.median(medians):.4g} "
                  f"ms, harness/hand {mid:.3f} [{low:.3f}-{high:.3f}], hand mean/median "
                  f"{np.median(mean_over_median):.3f}", flush=True)


if __name__ == "__main__":
    main()
