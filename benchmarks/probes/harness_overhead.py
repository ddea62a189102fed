"""What `klayers bench` adds to a step's time: the harness against a hand-written loop.

The bench times a step (`predict_on_batch` or `train_on_batch` of a one-layer model) one call
at a time, in blocks that alternate between implementations, and reports the median. This
probe builds the very same step the bench's worker builds (`measure._keras_step`: the same
model, compile settings and input tensors) and times it two ways, alternately, three times:

- harness: `measure.measure_group` on that one measurement, as `klayers bench` runs it;
- hand: a plain loop, `for _ in range(n): step()`, timed as a whole, divided by n, the median
  of 10 such loops of about 0.1 s each.

It prints, per case and mode, both medians and harness / hand; above 1 the harness adds time.

Run: `KERAS_BACKEND=jax python benchmarks/probes/harness_overhead.py` (and tensorflow, torch),
from the repository root with the package installed (`make install`).
"""

import statistics
import time

import keras

from klayers.bench.protocol import MeasurementJob, WorkerSettings
from klayers.bench.worker import measure

CASES = [  # (layer, config, input shape, batch): a few microseconds to a few milliseconds
    ("Dense", {"units": 64}, [64], 32),
    ("Dense", {"units": 1024}, [1024], 32),
    ("Conv2D", {"filters": 32, "kernel_size": 3, "padding": "same"}, [32, 32, 16], 16),
]
ROUNDS = 3
SETTINGS = WorkerSettings(min_time=1.0, min_rounds=10)


def hand_loop_ms(step, loops=10, seconds=0.1):
    start = time.perf_counter()
    step()
    calls = max(1, int(seconds / max(time.perf_counter() - start, 1e-7)))
    times = []
    for _ in range(loops):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        times.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(times)


def main():
    print(f"backend {keras.backend.backend()}; harness / hand-written loop, median step ms")
    for layer, config, shape, batch in CASES:
        for mode in ("predict", "train"):
            job = MeasurementJob(index=0, layer=layer, kind="catalog", keras_name=layer,
                                 config=config, input_shape=shape, input_dtype="float32",
                                 implementation="keraslayers", device="cpu:0",
                                 dtype="float32", mode=mode, batch_size=batch)
            step, _ = measure._keras_step(job, SETTINGS, {})
            harness, hand = [], []
            for _ in range(ROUNDS):
                (record,) = measure.measure_group([job], SETTINGS)
                harness.append(record["latency_ms"]["median"])
                hand.append(hand_loop_ms(step))
            h, m = statistics.median(harness), statistics.median(hand)
            print(f"{layer}({config}) on {shape} b{batch} {mode}: harness {h:.4g} ms, "
                  f"hand {m:.4g} ms, harness/hand {h / m:.3f}")


if __name__ == "__main__":
    main()
