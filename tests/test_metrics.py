"""Utility metrics against values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from privagg import PrivaggInputError
from privagg import metrics as m


def table(values, keys=None):
    keys = keys if keys is not None else list(range(len(values)))
    return pd.DataFrame({"cell_id": keys, "value": values})


# true:     cell 0..3 = 10, 0, 5, 100
# released: cell 0 = 12, cell 1 = 1, cell 2 suppressed (NaN), cell 3 = 90, cell 4 (not in truth) = 3
TRUE = table([10.0, 0.0, 5.0, 100.0])
RELEASED = table([12.0, 1.0, np.nan, 90.0, 3.0], keys=[0, 1, 2, 3, 4])
# aligned errors: |12-10|=2, |1-0|=1, |0-5|=5, |90-100|=10, |3-0|=3


def test_align_fills_missing_and_suppressed_with_zero():
    a = m.align(TRUE, RELEASED, ["cell_id"]).sort_values("cell_id")
    assert a["true"].tolist() == [10, 0, 5, 100, 0]
    assert a["released"].tolist() == [12, 1, 0, 90, 3]
    assert a["is_released"].tolist() == [True, True, False, True, True]


def test_mae_rmse():
    assert m.mae(TRUE, RELEASED) == pytest.approx((2 + 1 + 5 + 10 + 3) / 5)
    assert m.rmse(TRUE, RELEASED) == pytest.approx(math.sqrt((4 + 1 + 25 + 100 + 9) / 5))


def test_mean_relative_error_uses_floor():
    # floor 1: 2/10 + 1/1 + 5/5 + 10/100 + 3/1
    assert m.mean_relative_error(TRUE, RELEASED) == pytest.approx((0.2 + 1 + 1 + 0.1 + 3) / 5)
    # floor 10: 2/10 + 1/10 + 5/10 + 10/100 + 3/10
    assert m.mean_relative_error(TRUE, RELEASED, floor=10) == pytest.approx((0.2 + 0.1 + 0.5 + 0.1 + 0.3) / 5)


def test_share_within_10pct():
    # within 10% of max(x, 1): key 3 (10 <= 10) only; key 0: 2 > 1
    assert m.share_within(TRUE, RELEASED) == pytest.approx(1 / 5)
    # within 25%: key 0 (2 <= 2.5), key 3
    assert m.share_within(TRUE, RELEASED, tolerance=0.25) == pytest.approx(2 / 5)


def test_false_positive_and_negative_keys():
    # FP: released with true 0 -> keys 1 and 4; FN: true > 0 not released -> key 2
    assert m.false_positive_keys(TRUE, RELEASED) == 2
    assert m.false_negative_keys(TRUE, RELEASED) == 1


def test_hotspot_spearman_sums_per_area():
    true = pd.DataFrame({"cell_id": [1, 1, 2, 2, 3, 3], "hour": [0, 1] * 3, "value": [5, 5, 1, 1, 20, 0]})
    # totals true: 1->10, 2->2, 3->20 ; released totals: 1->3, 2->9, 3->30
    rel = pd.DataFrame({"cell_id": [1, 1, 2, 2, 3, 3], "hour": [0, 1] * 3, "value": [1, 2, 4, 5, 30, 0]})
    # true ranks (2,1,3), released ranks (1,2,3): d^2 = 1+1+0 -> rho = 1 - 6*2/(3*8) = 0.5
    assert m.hotspot_spearman(true, rel, ["cell_id", "hour"]) == pytest.approx(0.5)
    assert m.hotspot_spearman(true, true, ["cell_id", "hour"]) == pytest.approx(1.0)
    # only the true top 2 (cells 3 and 1): released order 30 > 3 agrees
    assert m.hotspot_spearman(true, rel, ["cell_id", "hour"], top_n=2) == pytest.approx(1.0)


def test_hotspot_spearman_constant_is_nan():
    assert math.isnan(m.hotspot_spearman(table([1.0, 1.0]), table([1.0, 2.0])))


def test_top_k_recall_od():
    true = pd.DataFrame({"origin": [1, 1, 2, 2], "destination": [2, 3, 1, 3], "value": [50, 40, 30, 1]})
    rel = pd.DataFrame({"origin": [1, 1, 2, 2], "destination": [2, 3, 1, 3], "value": [45, np.nan, 35, 20]})
    # true top-2: (1,2), (1,3); released top-2: (1,2), (2,1) -> recall 1/2
    assert m.top_k_recall(true, rel, ["origin", "destination"], k=2) == pytest.approx(0.5)
    assert m.top_k_recall(true, rel, ["origin", "destination"], k=3) == pytest.approx(2 / 3)
    assert m.top_k_recall(true, true, k=2) == 1.0


def test_direction_accuracy():
    ta = table([10.0, 10.0, 10.0, 10.0])
    tb = table([20.0, 5.0, 10.0, 11.0])  # changes +10, -5, 0 (not scored), +1
    ra = table([10.0, 10.0, 10.0, 12.0])
    rb = table([18.0, 11.0, 3.0, 12.0])  # changes +8 (right), +1 (wrong), ignored, 0 (wrong)
    assert m.direction_accuracy(ta, tb, ra, rb) == pytest.approx(1 / 3)
    # min_change=2 leaves keys 0 and 1
    assert m.direction_accuracy(ta, tb, ra, rb, min_change=2) == pytest.approx(1 / 2)
    assert math.isnan(m.direction_accuracy(ta, ta, ra, rb))


def test_compute_metrics_and_unknown_name():
    out = m.compute_metrics(TRUE, RELEASED, ["mae", "top_k_recall"], options={"top_k_recall": {"k": 1}})
    assert out["mae"] == pytest.approx(4.2)
    assert out["top_k_recall"] == 1.0
    with pytest.raises(PrivaggInputError, match=r"unknown metric\(s\) \['maee'\]. Fix: use some of mae, rmse"):
        m.compute_metrics(TRUE, RELEASED, ["maee"])


def test_bad_inputs_name_the_problem():
    with pytest.raises(PrivaggInputError, match="released table has no 'value' column"):
        m.mae(TRUE, pd.DataFrame({"cell_id": [1]}))
    with pytest.raises(PrivaggInputError, match=r"floor=0: must be a positive number"):
        m.mean_relative_error(TRUE, RELEASED, floor=0)
    with pytest.raises(PrivaggInputError, match="duplicate keys"):
        m.mae(TRUE, table([1.0, 2.0], keys=[0, 0]))
    with pytest.raises(PrivaggInputError, match=r"true table lacks key column\(s\) \[.hour.\]"):
        m.mae(TRUE, RELEASED, ["cell_id", "hour"])
