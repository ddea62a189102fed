"""Statistics of timing samples (klayers.bench.statistics): quantiles, summaries, ratios."""

import math

import pytest

from klayers.bench.statistics import (
    is_noisy,
    outlier_count,
    quantile,
    ratio_with_spread,
    relative_speeds,
    summarize,
)


def test_quantile_interpolates_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]
    assert quantile(values, 0.5) == 2.5
    assert quantile(values, 0.25) == 1.75
    assert quantile(values, 0.0) == 1.0
    assert quantile(values, 1.0) == 4.0
    assert quantile([7.0], 0.3) == 7.0


@pytest.mark.parametrize("values, q", [([], 0.5), ([1.0], -0.1), ([1.0], 1.5)])
def test_quantile_rejects_bad_input(values, q):
    with pytest.raises(ValueError):
        quantile(values, q)


def test_summarize():
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary["median"] == 3.0
    assert summary["p25"] == 2.0 and summary["p75"] == 4.0
    assert summary["iqr"] == 2.0
    assert summary["min"] == 1.0 and summary["max"] == 100.0 and summary["count"] == 5
    assert summary["outliers"] == 1  # 100 lies beyond 4 + 1.5 * 2


def test_outlier_count_uses_tukeys_fences():
    assert outlier_count([1.0, 1.0, 1.0, 1.0]) == 0
    assert outlier_count([10.0, 11.0, 12.0, 13.0, 0.0, 50.0]) == 2


def test_is_noisy_compares_the_iqr_with_the_median():
    assert not is_noisy({"median": 10.0, "iqr": 0.5})
    assert is_noisy({"median": 10.0, "iqr": 2.0})
    assert not is_noisy({"median": 0.0, "iqr": 1.0})


def test_relative_speeds_puts_the_fastest_at_one():
    speeds = relative_speeds({"jax": 200.0, "tensorflow": 100.0, "torch": 50.0, "broken": None})
    assert speeds == {"jax": 1.0, "tensorflow": 0.5, "torch": 0.25}
    assert relative_speeds({}) == {}


def test_ratio_with_spread_is_how_many_times_faster():
    fast = {"median": 1.0, "iqr": 0.1}
    slow = {"median": 2.0, "iqr": 0.2}
    ratio, spread = ratio_with_spread(fast, slow)
    assert ratio == 2.0
    assert spread == pytest.approx(2.0 * math.hypot(0.1, 0.1) / 2)
