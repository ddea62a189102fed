"""Summary statistics of timing samples, and how to compare them.

Plain Python (no keras, no numpy), so the parent process and the tests can use it freely.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# An IQR above this fraction of the median marks a measurement as noisy (as
# torch.utils.benchmark warns when the spread is large relative to the median).
NOISY_IQR_FRACTION = 0.10


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (NumPy's default)."""
    if not values:
        raise ValueError("quantile of an empty sample")
    if not 0 <= q <= 1:
        raise ValueError(f"quantile q must be in [0, 1], received q={q!r}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, IQR, min, max, count and outliers of a sample of per-step times."""
    return {
        "median": quantile(samples, 0.5),
        "p25": quantile(samples, 0.25),
        "p75": quantile(samples, 0.75),
        "iqr": quantile(samples, 0.75) - quantile(samples, 0.25),
        "min": min(samples),
        "max": max(samples),
        "count": len(samples),
        "outliers": outlier_count(samples),
    }


def outlier_count(samples: Sequence[float]) -> int:
    """How many samples lie beyond Tukey's fences, 1.5 IQR outside the quartiles.

    As hyperfine warns of outliers: a few slow steps (another process, a collection) leave
    the median alone but say the machine was not quiet.
    """
    low, high = quantile(samples, 0.25), quantile(samples, 0.75)
    spread = 1.5 * (high - low)
    return sum(1 for value in samples if value < low - spread or value > high + spread)


def is_noisy(summary: dict[str, float], fraction: float = NOISY_IQR_FRACTION) -> bool:
    return summary["median"] > 0 and summary["iqr"] / summary["median"] > fraction


def relative_speeds(throughputs: dict[str, float]) -> dict[str, float]:
    """Each entry's throughput divided by the best one: the fastest gets 1.00."""
    usable = {name: value for name, value in throughputs.items() if value and value > 0}
    if not usable:
        return {}
    best = max(usable.values())
    return {name: value / best for name, value in usable.items()}


def ratio_with_spread(
    a: dict[str, float], b: dict[str, float]
) -> tuple[float, float]:
    """How many times faster `a` ran than `b` (latency summaries), and the spread of that.

    As hyperfine reports "A ran 1.52 ± 0.03 times faster than B": the ratio of medians, and
    its uncertainty from the two semi-interquartile ranges, combined as relative errors.
    """
    ratio = b["median"] / a["median"]
    relative = math.hypot(a["iqr"] / a["median"], b["iqr"] / b["median"]) / 2
    return ratio, ratio * relative
