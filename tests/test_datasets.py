"""klayers.train.datasets: shapes, dtypes, determinism, disjoint splits, task rules, offline
errors."""


import numpy as np
import pytest

from klayers.train import datasets
from klayers.train.datasets import DatasetError, load_dataset

OFFLINE = ("digits", *datasets.GENERATED)


def rows(x):
    """Each sample as bytes (all named inputs together), to compare samples as a set."""
    if isinstance(x, dict):
        x = np.concatenate([x[k].reshape(len(x[k]), -1) for k in sorted(x)], axis=1)
    return {row.tobytes() for row in x.reshape(len(x), -1)}


def first_input(x):
    return x["source"] if isinstance(x, dict) else x


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_data_sets_are_deterministic_and_disjoint(name):
    a, b, other = load_dataset(name, 3), load_dataset(name, 3), load_dataset(name, 4)
    assert a.name == name and a.task in datasets.TASKS
    for split in ("x_train", "x_test"):
        xa, xb = getattr(a, split), getattr(b, split)
        if isinstance(xa, dict):
            assert xa.keys() == xb.keys()
            for key in xa:
                np.testing.assert_array_equal(xa[key], xb[key])
        else:
            np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert rows(a.x_train) != rows(other.x_train)
    assert not rows(a.x_train) & rows(a.x_test)
    assert a.num_train == len(first_input(a.x_train)) and a.num_test == len(a.y_test)


def test_digits_images_labels_and_baseline():
    data = load_dataset("digits", 0)
    assert data.x_train.shape[1:] == (8, 8, 1) and data.x_train.dtype == np.float32
    assert data.num_train + data.num_test == 1797
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert data.y_train.dtype == np.int32 and set(np.unique(data.y_test)) == set(range(10))
    # Stratified: each class has close to a fifth of its samples in the test set.
    fractions = np.bincount(data.y_test) / (np.bincount(data.y_test) + np.bincount(data.y_train))
    assert np.all(np.abs(fractions - 0.2) < 0.02)
    mean_image = data.x_train.mean(axis=0)
    expected = np.mean((data.x_test - mean_image) ** 2)
    assert data.info["baseline_mse"] == pytest.approx(expected)
    assert data.info["input_shape"] == (8, 8, 1) and data.info["num_classes"] == 10


def test_flattened_and_reconstruction_views():
    data = load_dataset("digits", 0)
    flat = data.flattened()
    assert flat.x_train.shape == (data.num_train, 64) and flat.info["input_shape"] == (64,)
    np.testing.assert_array_equal(flat.x_test[5], data.x_test[5].ravel())
    auto = data.as_reconstruction()
    assert auto.task == "reconstruction" and "num_classes" not in auto.info
    assert auto.y_train is auto.x_train and auto.info["baseline_mse"] > 0
    with pytest.raises(DatasetError, match="not an image data set"):
        load_dataset("majority", 0).as_reconstruction()
    with pytest.raises(DatasetError, match="several inputs"):
        load_dataset("sort", 0).flattened()


def test_adding_labels_follow_the_marked_values():
    data = load_dataset("adding", 0)
    x, y = data.x_train, data.y_train
    assert x.shape[1:] == data.info["input_shape"] == (20, 2) and x.dtype == np.float32
    markers = x[..., 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1)  # one marker in each half
    sums = (x[..., 0] * markers).sum(axis=1)
    np.testing.assert_array_equal(y, (sums > 1).astype("int32"))
    assert 0.45 < y.mean() < 0.55


def test_majority_labels_are_the_unique_most_frequent_token():
    data = load_dataset("majority", 0)
    x, y = data.x_test, data.y_test
    symbols = data.info["num_classes"]
    assert x.dtype == np.int32 and x.min() >= 1 and x.max() <= symbols
    counts = np.stack([(x == s).sum(axis=1) for s in range(1, symbols + 1)], axis=1)
    np.testing.assert_array_equal(y, counts.argmax(axis=1))
    assert np.all(np.sort(counts, axis=1)[:, -1] > np.sort(counts, axis=1)[:, -2])


def test_reverse_and_sort_targets():
    reverse = load_dataset("reverse", 0)
    np.testing.assert_array_equal(reverse.y_train, reverse.x_train[:, ::-1])
    assert reverse.task == "sequence" and reverse.info["per_token"]
    assert reverse.x_train.min() > datasets.START  # 0 pads, 1 starts: neither is data
    assert reverse.x_train.max() < reverse.info["vocabulary_size"]
    shifted = load_dataset("shifted_reverse", 0)
    steps = shifted.info["sequence_length"]
    for t in range(steps):  # the token one before the mirrored position, wrapping around
        np.testing.assert_array_equal(shifted.y_test[:, t],
                                      shifted.x_test[:, (steps - 2 - t) % steps])
    assert shifted.info == reverse.info and not rows(shifted.x_train) & rows(reverse.x_train)
    sort = load_dataset("sort", 0)
    source, target_input = sort.x_test["source"], sort.x_test["target_input"]
    np.testing.assert_array_equal(sort.y_test, np.sort(source, axis=1))
    np.testing.assert_array_equal(target_input[:, 0], datasets.START)
    np.testing.assert_array_equal(target_input[:, 1:], sort.y_test[:, :-1])


@pytest.mark.parametrize("name, seed, message", [
    ("digit", 0, "unknown data set 'digit'"),
    ("digits", -1, "non-negative int"),
    ("digits", 1.5, "non-negative int"),
])
def test_bad_names_and_seeds(name, seed, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(name, seed)


def test_keras_data_set_without_network_fails_at_once(monkeypatch, tmp_path):
    # An empty cache and no network: a one-line error, and keras.datasets is never called.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(datasets, "network_reachable", lambda *a, **k: calls.append(a) or False)
    for name in datasets.KERAS_DATASETS:
        with pytest.raises(DatasetError) as error:
            load_dataset(name, 0)
        message = str(error.value)
        assert "\n" not in message and name in message and "cannot be reached" in message
        assert "digits" in message
    assert len(calls) == len(datasets.KERAS_DATASETS)


def test_reachability_check_times_out_quickly():
    # A TEST-NET-1 address (RFC 5737) never answers: the check gives up within its timeout.
    import time

    start = time.perf_counter()
    assert datasets.network_reachable(("192.0.2.1", 9), timeout=0.2) is False
    assert time.perf_counter() - start < 5


