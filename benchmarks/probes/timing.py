"""The probes' one timer: functions timed in interleaved rounds, medians in microseconds.

Each round runs every function `repeats` times in turn, so load that comes and goes while a
probe runs slows all of them alike (the same method as `klayers bench`).
"""

import statistics
import time


def interleaved(functions, rounds=20, repeats=20, warm_up=3):
    """`{name: median microseconds per call}` of `{name: zero-argument function}`."""
    for function in functions.values():
        for _ in range(warm_up):
            function()
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(repeats):
                function()
            times[name].append((time.perf_counter() - start) / repeats * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}
