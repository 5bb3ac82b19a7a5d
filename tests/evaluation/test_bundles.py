"""The rules of bundles under a protocol: what is refused, and before what."""

from __future__ import annotations

import pytest

from urbanflow.data.catalog import load_dataset
from urbanflow.errors import ConfigError, DataError
from urbanflow.evaluation import bundles
from urbanflow.evaluation.protocol import make_plan


@pytest.fixture(scope="module")
def los_loop():
    return load_dataset("los-loop")


def test_a_baseline_is_refused_before_any_fitting(los_loop, tmp_path, monkeypatch):
    def no_fitting(*args, **kwargs):
        raise AssertionError("train_bundle fitted a model it was going to refuse")

    monkeypatch.setattr(bundles, "evaluate_by_name", no_fitting)
    plan = make_plan("default", los_loop.num_steps, 12)
    with pytest.raises(ConfigError, match="ridge is a baseline"):
        bundles.train_bundle(los_loop, "ridge", plan, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_test_windows_inside_the_fitted_steps_are_refused(los_loop):
    plan = make_plan("default", los_loop.num_steps, 12)
    card = {
        "dataset": {"fingerprint": los_loop.fingerprint, "fit_stop": plan.fit_stop},
        "protocol": "default",
    }
    bundles.require_unseen_test(card, los_loop, plan, "bundle")  # its own protocol: allowed
    wider = make_plan("default", los_loop.num_steps, 12, split=(0.3, 0.1, 0.6))
    with pytest.raises(DataError, match=r"fitted on \(0-"):
        bundles.require_unseen_test(card, los_loop, wider, "bundle")
    other = {**card, "dataset": {**card["dataset"], "fingerprint": "another dataset"}}
    bundles.require_unseen_test(other, los_loop, wider, "bundle")  # other data: allowed
