import numpy as np
import pytest

from urbanflow.evaluation.metrics import ErrorTotals, forecast_metrics, present


def test_metrics_match_hand_computed_values():
    # one sample, two steps, two sensors: [b h n]
    y = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    yhat = np.array([[[12.0, 17.0], [30.0, 44.0]]])
    m = forecast_metrics(y, yhat)
    # errors: -2, 3, 0, -4 -> |e| = 2, 3, 0, 4
    assert m["mae"] == pytest.approx(9 / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 9 + 0 + 16) / 4))
    assert m["mape"] == pytest.approx((2 / 10 + 3 / 20 + 0 / 30 + 4 / 40) / 4)
    assert m["wmape"] == pytest.approx(9 / 100)
    assert m["accuracy"] == pytest.approx(1 - 9 / 100)
    assert m["tgcn_accuracy"] == pytest.approx(1 - np.sqrt(29) / np.sqrt(100 + 400 + 900 + 1600))


def test_missing_and_null_targets_are_left_out():
    y = np.array([[[10.0, np.nan], [0.0, 40.0]]])
    yhat = np.array([[[11.0, 99.0], [50.0, 38.0]]])
    with_null = forecast_metrics(y, yhat, null_value=0.0)
    assert with_null["count"] == 2
    assert with_null["mae"] == pytest.approx((1 + 2) / 2)
    without_null = forecast_metrics(y, yhat)
    assert without_null["count"] == 3
    assert without_null["mae"] == pytest.approx((1 + 50 + 2) / 3)
    # MAPE skips the zero target but MAE does not
    assert without_null["mape"] == pytest.approx((1 / 10 + 2 / 40) / 2)


def test_per_step_totals_and_pooling():
    y = np.zeros((3, 2, 1)) + 10
    yhat = y.copy()
    yhat[:, 0] += 1  # step 1 off by 1
    yhat[:, 1] += 3  # step 2 off by 3
    totals = ErrorTotals(2)
    totals.add(y[:2], yhat[:2])
    totals.add(y[2:], yhat[2:])  # batches add up
    assert totals.pooled([1])["mae"] == pytest.approx(1)
    assert totals.pooled([2])["mae"] == pytest.approx(3)
    assert totals.pooled([1, 2])["mae"] == pytest.approx(2)
    assert totals.pooled([1, 2])["rmse"] == pytest.approx(np.sqrt(5))


def test_no_present_target_gives_nan_not_error():
    m = forecast_metrics(np.full((1, 1, 1), np.nan), np.zeros((1, 1, 1)))
    assert m["count"] == 0 and np.isnan(m["mae"])


def test_present_mask():
    mask = present(np.array([1.0, np.nan, 0.0]), null_value=0.0)
    assert mask.tolist() == [True, False, False]


def test_mape_above_counts_only_targets_at_or_above_the_threshold():
    # count data: zeros and small counts; one sample, one step, five sensors
    y = np.array([[[0.0, 1.0, 2.0, 10.0, np.nan]]])
    yhat = np.array([[[3.0, 2.0, 1.0, 12.0, 5.0]]])
    at_one = forecast_metrics(y, yhat, mape_threshold=1.0)
    # targets ≥ 1: 1, 2, 10 -> |e|/y = 1/1, 1/2, 2/10
    assert at_one["mape_above"] == pytest.approx((1 + 0.5 + 0.2) / 3)
    # the plain MAPE skips only the zero: the same three targets here
    assert at_one["mape"] == pytest.approx((1 + 0.5 + 0.2) / 3)
    at_two = forecast_metrics(y, yhat, mape_threshold=2.0)
    assert at_two["mape_above"] == pytest.approx((0.5 + 0.2) / 2)
    # threshold 0 still never divides by a zero target
    at_zero = forecast_metrics(y, yhat, mape_threshold=0.0)
    assert at_zero["mape_above"] == pytest.approx((1 + 0.5 + 0.2) / 3)
    # no target reaches the threshold: NaN, not an error
    assert np.isnan(forecast_metrics(y, yhat, mape_threshold=100.0)["mape_above"])
    # MAE still counts the zero target
    assert at_one["mae"] == pytest.approx((3 + 1 + 1 + 2) / 4)


def test_mape_above_pools_per_step_like_the_other_metrics():
    y = np.array([[[0.5, 4.0], [8.0, 0.0]]])  # [b=1 h=2 n=2]
    yhat = np.array([[[1.5, 5.0], [6.0, 1.0]]])
    totals = ErrorTotals(2, mape_threshold=1.0)
    totals.add(y, yhat)
    assert totals.pooled([1])["mape_above"] == pytest.approx(1 / 4)  # 0.5 is below 1
    assert totals.pooled([2])["mape_above"] == pytest.approx(2 / 8)
    assert totals.pooled([1, 2])["mape_above"] == pytest.approx((1 / 4 + 2 / 8) / 2)
    # the plain MAPE counts 0.5 (|e|/y = 2): the rule mape_above is there to avoid
    assert totals.pooled([1])["mape"] == pytest.approx((2 + 1 / 4) / 2)


def test_default_threshold_is_one_unit_for_every_kind():
    from urbanflow.data.dataset import FLOW_KINDS
    from urbanflow.evaluation.metrics import METRIC_NAMES, default_mape_threshold, metric_label

    assert {default_mape_threshold(kind) for kind in FLOW_KINDS} == {1.0}
    assert "mape_above" in METRIC_NAMES and "mape" in METRIC_NAMES and "wmape" in METRIC_NAMES
    assert metric_label("mape_above", 1.0) == "mape≥1"
    assert metric_label("mape_above", 2.5) == "mape≥2.5"
