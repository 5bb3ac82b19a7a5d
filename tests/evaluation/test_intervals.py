"""Interval metrics against hand-computed values, and intervals in evaluation results."""

from __future__ import annotations

import numpy as np
import pytest

from urbanflow.evaluation import evaluate as evaluation
from urbanflow.evaluation import intervals, metrics
from urbanflow.evaluation.evaluate import evaluate_by_name, score_fitted
from urbanflow.evaluation.metrics import ErrorTotals, IntervalTotals
from urbanflow.evaluation.protocol import make_plan
from urbanflow.models.registry import make_model


def test_interval_metrics_by_hand():
    # one sample, one step, two sensors; levels 50 % (α = 0.5) and 90 % (α = 0.1)
    y = np.array([[[10.0, 20.0]]])
    forecast = np.array([[[11.0, 18.0]]])
    lower = np.array([[[[9.0, 19.0]], [[8.0, 15.0]]]])  # [b K h n]
    upper = np.array([[[[12.0, 19.5]], [[14.0, 21.0]]]])
    totals = IntervalTotals((50.0, 90.0), 1)
    totals.add(y, forecast, lower, upper)
    m = totals.pooled([1])
    # 50 %: sensor 1 inside (width 3), sensor 2 above by 0.5 (width 0.5, penalty 2/0.5·0.5)
    assert m["coverage_50"] == 0.5
    assert m["width_50"] == pytest.approx((3 + 0.5) / 2)
    assert m["interval_score_50"] == pytest.approx((3 + (0.5 + 4 * 0.5)) / 2)
    # 90 %: both inside, widths 6 and 6
    assert m["coverage_90"] == 1.0 and m["interval_score_90"] == pytest.approx(6.0)
    # WIS = (½|y - ŷ| + 0.25·IS50 + 0.05·IS90) / 2.5, averaged over the two targets
    wis_1 = (0.5 * 1 + 0.25 * 3 + 0.05 * 6) / 2.5
    wis_2 = (0.5 * 2 + 0.25 * 2.5 + 0.05 * 6) / 2.5
    assert m["wis"] == pytest.approx((wis_1 + wis_2) / 2)


def test_missing_targets_are_left_out_of_interval_metrics():
    y = np.array([[[np.nan, 5.0]]])
    bounds = np.array([[[[0.0, 0.0]]]]), np.array([[[[10.0, 10.0]]]])
    totals = IntervalTotals((80.0,), 1)
    totals.add(y, np.zeros((1, 1, 2)), *bounds)
    assert totals.count[0] == 1 and totals.pooled([1])["coverage_80"] == 1.0


def test_evaluate_reports_intervals_as_new_keys(los_loop):
    plan = make_plan("default", los_loop.num_steps, 12)
    plain, _ = evaluate_by_name(los_loop, "last-value", plan)
    with_levels, _ = evaluate_by_name(los_loop, "last-value", plan, levels=(80.0, 95.0))
    for a, b in zip(plain.horizons, with_levels.horizons, strict=True):
        assert a.metrics["mae"] == b.metrics["mae"]
        assert 0.75 < b.metrics["coverage_80"] < b.metrics["coverage_95"] <= 1
        assert b.metrics["width_80"] < b.metrics["width_95"]
    payload = with_levels.to_json()
    assert payload["levels"] == [80.0, 95.0] and "wis" in payload["average"]
    assert "levels" not in plain.to_json() and "wis" not in plain.to_json()["average"]


def test_a_validation_part_too_short_to_calibrate_gives_no_intervals_not_an_error(los_loop):
    # 2 validation samples cannot leave a residual of step 12 before the test part
    count = los_loop.num_steps - 12 - 12 + 1
    split = (0.7, 2 / count, 1 - 0.7 - 2 / count)
    plan = make_plan("default", los_loop.num_steps, 12, split=split)
    assert plan.validation_times.size == 2
    result, _ = evaluate_by_name(los_loop, "last-value", plan, levels=(90.0,))
    assert result.levels == () and result.calibration is None
    assert "coverage_90" not in result.horizons[0].metrics


def test_totals_added_in_small_chunks_equal_totals_added_at_once(monkeypatch):
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, (9, 4, 5))
    y[0, 1, 2] = np.nan
    y[3, 0, 0] = 0.0
    forecast = y + rng.normal(0, 1, y.shape)
    forecast[0, 1, 2] = 1.0
    half_width = np.array([1.0, 2.0])[None, :, None, None]  # [1 K 1 1]
    lower, upper = forecast[:, None] - half_width, forecast[:, None] + 1.5 * half_width
    at_once, interval_at_once = ErrorTotals(4, 9.0), IntervalTotals((50.0, 90.0), 4)
    at_once.add(y, forecast)
    interval_at_once.add(y, forecast, lower, upper)
    monkeypatch.setattr(metrics, "CHUNK_ELEMENTS", 7)  # fewer than one sample: row by row
    chunked, interval_chunked = ErrorTotals(4, 9.0), IntervalTotals((50.0, 90.0), 4)
    chunked.add(y, forecast)
    interval_chunked.add(y, forecast, lower, upper)
    for name in ErrorTotals.SUMS:
        np.testing.assert_allclose(getattr(chunked, name), getattr(at_once, name), rtol=1e-12)
    assert chunked.count.sum() == y.size - 1 and chunked.ape_count.sum() == y.size - 2
    assert interval_chunked.pooled(range(1, 5)) == pytest.approx(
        interval_at_once.pooled(range(1, 5)), rel=1e-12
    )


def test_scoring_a_few_samples_at_a_time_gives_the_same_metrics_and_intervals(
    los_loop, monkeypatch
):
    plan = make_plan("default", los_loop.num_steps, 12)
    model = make_model("historical-average", input_len=12, horizon=12)
    model.fit(los_loop.slice_steps(0, plan.fit_stop))
    whole = score_fitted(model, los_loop, plan, levels=(80.0, 95.0))
    # budgets of 6 samples' forecasts and 1 sample's sums: a city ~40-250 times larger
    monkeypatch.setattr(intervals, "FORECAST_ELEMENTS", 6 * 12 * los_loop.num_sensors)
    monkeypatch.setattr(metrics, "CHUNK_ELEMENTS", 12 * los_loop.num_sensors)
    calls = []
    predict = model.predict
    monkeypatch.setattr(
        model, "predict", lambda data, times: calls.append(times) or predict(data, times)
    )
    chunked = score_fitted(model, los_loop, plan, levels=(80.0, 95.0))
    assert max(len(times) for times in calls) == 6  # point scoring; intervals (2 levels): 3
    for a, b in zip((*whole.horizons, whole), (*chunked.horizons, chunked), strict=True):
        metrics_a = a.metrics if hasattr(a, "metrics") else a.average
        metrics_b = b.metrics if hasattr(b, "metrics") else b.average
        assert metrics_b == pytest.approx(metrics_a, rel=1e-9)
    assert chunked.validation == pytest.approx(whole.validation, rel=1e-9)
    np.testing.assert_allclose(chunked.calibration.scale, whole.calibration.scale, rtol=1e-12)
    np.testing.assert_allclose(chunked.calibration.scores, whole.calibration.scores, rtol=1e-6)


def test_no_levels_calibrate_nothing_unless_asked(los_loop, monkeypatch):
    plan = make_plan("default", los_loop.num_steps, 12)
    model = make_model("last-value", input_len=12, horizon=12)
    model.fit(los_loop.slice_steps(0, plan.fit_stop))
    asked = []
    calibrate = intervals.calibrate_on_validation
    monkeypatch.setattr(
        evaluation,
        "calibrate_on_validation",
        lambda *args, **kwargs: asked.append(1) or calibrate(*args, **kwargs),
    )
    plain = score_fitted(model, los_loop, plan)
    assert plain.calibration is None and not asked
    stored = score_fitted(model, los_loop, plan, calibrate=True)
    assert stored.calibration is not None and asked == [1] and stored.levels == ()
    assert stored.average == plain.average


@pytest.mark.parametrize("levels", [(), (80.0, 95.0)])
def test_scoring_forecasts_each_sample_once(los_loop, monkeypatch, levels):
    plan = make_plan("default", los_loop.num_steps, 12)
    model = make_model("last-value", input_len=12, horizon=12)
    model.fit(los_loop.slice_steps(0, plan.fit_stop))
    calls: list[np.ndarray] = []
    predict = model.predict
    monkeypatch.setattr(
        model, "predict", lambda data, times: calls.append(times) or predict(data, times)
    )
    result = score_fitted(model, los_loop, plan, levels=levels, calibrate=True)
    forecast = np.concatenate(calls)
    tested = intervals.replay_span(plan, result.calibration) if levels else plan.test_times
    assert set(forecast) == set(plan.validation_times) | set(tested)
    # twice only the validation samples the replay starts from (targets past the cutoff)
    twice = set(plan.validation_times) & set(tested)
    assert forecast.size == np.unique(forecast).size + len(twice)
    assert len(twice) < plan.horizon
