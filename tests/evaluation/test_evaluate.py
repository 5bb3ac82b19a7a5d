"""The acceptance figures of EVALUATION.md, reproduced through the whole pipeline."""

import numpy as np
import pytest
from tests.reference import tgcn_persistence

from urbanflow.data.catalog import load_dataset
from urbanflow.evaluation.evaluate import evaluate
from urbanflow.evaluation.protocol import default_plan, make_plan, tgcn_plan
from urbanflow.models.base import Forecaster
from urbanflow.models.registry import make_model


@pytest.fixture(scope="module")
def los_loop():
    return load_dataset("los-loop")


def test_persistence_default_check_figures(los_loop):
    plan = default_plan(los_loop.num_steps, 12, (1, 3, 6, 12))
    result = evaluate(make_model("last-value"), los_loop, plan)
    # EVALUATION.md, check figures (Los-loop, default preset, L = 12, H = 12): 399 test
    # samples; persistence (last-value) at steps 1 / 3 / 6 / 12.
    assert result.plan.test_samples == 399
    mae = [round(h.metrics["mae"], 3) for h in result.horizons]
    rmse = [round(h.metrics["rmse"], 3) for h in result.horizons]
    assert mae == [2.679, 3.550, 4.351, 5.731]
    assert rmse == [4.430, 6.437, 8.202, 10.810]


def test_persistence_tgcn_check_figures(los_loop):
    result = evaluate(make_model("last-value"), los_loop, tgcn_plan(los_loop.num_steps))
    by_steps = {h.steps: h.metrics for h in result.horizons}
    # EVALUATION.md, preset tgcn, check: persistence (last value) on Los-loop, RMSE / MAE at
    # 15 and 60 minutes.
    assert round(by_steps[3]["rmse"], 3) == 5.543
    assert round(by_steps[3]["mae"], 3) == 3.156
    assert round(by_steps[12]["rmse"], 3) == 8.456
    assert round(by_steps[12]["mae"], 3) == 4.433


def test_the_independent_reference_gives_the_tgcn_check_figures():
    """tests/reference.py (plain NumPy, used for the CLI's printed figures) agrees with
    EVALUATION.md's tgcn check figures too, so it is itself anchored to the protocol."""
    assert round(tgcn_persistence(3)["rmse"], 3) == 5.543
    assert round(tgcn_persistence(3)["mae"], 3) == 3.156
    assert round(tgcn_persistence(12)["rmse"], 3) == 8.456
    assert round(tgcn_persistence(12)["mae"], 3) == 4.433


class Spy(Forecaster):
    """Records what it was fitted on; predicts zeros."""

    name = "spy"

    def _fit(self, dataset, validation, progress):
        self.validation_steps_ = None if validation is None else validation.num_steps
        self.fit_steps_ = dataset.num_steps
        self.fit_last_time_ = dataset.timestamps[-1]

    def _predict(self, dataset, times):
        return np.zeros((times.size, self.horizon, dataset.num_sensors), dtype=np.float32)


@pytest.mark.parametrize("protocol", ["default", "tgcn"])
def test_model_is_fitted_on_fitting_rows_only(los_loop, protocol):
    plan = make_plan(protocol, los_loop.num_steps)
    spy = Spy(horizon=plan.horizon)
    result = evaluate(spy, los_loop, plan)
    assert spy.fit_steps_ == plan.fit_stop
    first_scored_target = min(plan.validation_times.min(), plan.test_times.min())
    assert plan.fit_stop <= first_scored_target + plan.horizon  # validation inputs may overlap
    assert plan.fit_stop <= plan.test_times.min() - plan.input_len  # test inputs never fitted
    # zeros forecast: MAE is the mean test speed, so scoring used real targets
    assert result.average["mae"] > 40


def test_results_file_has_the_protocol_keys(los_loop):
    result = evaluate(make_model("last-value"), los_loop, default_plan(los_loop.num_steps))
    payload = result.to_json()
    for key in (
        "dataset",
        "model",
        "input_len",
        "split",
        "test_samples",
        "null_value",
        "horizons",
        "average",
        "train_seconds",
        "parameters",
    ):
        assert key in payload
    assert payload["horizons"][0].keys() >= {
        "steps",
        "minutes",
        "mae",
        "rmse",
        "mape",
        "wmape",
        "accuracy",
    }
    assert [h["minutes"] for h in payload["horizons"]] == [15, 30, 60]
    assert payload["split"] == [0.7, 0.1, 0.2]


def test_results_and_protocol_text_say_the_kind_and_the_mape_threshold(los_loop):
    from urbanflow.evaluation.report import describe_protocol, horizon_table

    plan = default_plan(los_loop.num_steps)
    result = evaluate(make_model("last-value"), los_loop, plan, mape_threshold=5.0)
    payload = result.to_json()
    assert payload["kind"] == los_loop.kind and payload["kind_source"] == los_loop.kind_source
    assert payload["mape_above_threshold"] == 5.0
    assert {"mape", "mape_above", "wmape"} <= payload["average"].keys()
    text = describe_protocol(plan, los_loop, result.mape_threshold)
    assert f"kind {los_loop.kind} ({los_loop.kind_source})" in text and "mape≥5" in text
    assert "mape≥5" in [c.header for c in horizon_table(result).columns]
    default = evaluate(make_model("last-value"), los_loop, plan).to_json()
    assert default["mape_above_threshold"] == 1.0
