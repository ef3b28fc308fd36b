"""udfs.aggregate: per-label histogram sums of one Arrow batch, without Spark."""

import numpy as np
import pyarrow as pa
import pytest

from udfs.aggregate import HIST_BINS, sum_histograms


def hists(rows):
    return pa.array(rows, pa.list_(pa.int64()))


def test_sums_per_label_in_order_of_first_appearance_with_null_label_last():
    rng = np.random.default_rng(3)
    labels = ["b", "a", None, "b", "a", "b", None]
    rows = [rng.integers(0, 1000, HIST_BINS).tolist() for _ in labels]
    names, sums = sum_histograms(pa.array(labels), hists(rows))
    assert names == ["b", "a", None]
    for name, total in zip(names, sums, strict=True):
        expected = np.sum([r for r, lab in zip(rows, labels, strict=True) if lab == name], axis=0)
        assert total.tolist() == expected.tolist()
    assert sums.dtype == np.int64


def test_null_histograms_add_nothing_and_a_label_of_nulls_only_sums_to_zeros():
    row = list(range(HIST_BINS))
    names, sums = sum_histograms(pa.array(["x", "x", "y"]), hists([row, None, None]))
    assert names == ["x", "y"] and sums.tolist() == [row, [0] * HIST_BINS]
    names, sums = sum_histograms(pa.array([None, "x"]), hists([None, None]))
    assert names == ["x", None] and sums.tolist() == [[0] * HIST_BINS] * 2
    names, sums = sum_histograms(pa.array([], pa.string()), hists([]))
    assert names == [] and sums.shape == (0, HIST_BINS)


def test_large_counts_do_not_overflow():
    big = [2**40] * HIST_BINS
    names, sums = sum_histograms(pa.array(["x"] * 3), hists([big] * 3))
    assert sums[0, 0] == 3 * 2**40


def test_a_histogram_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="256 bins"):
        sum_histograms(pa.array(["x"]), hists([[1, 2, 3]]))
