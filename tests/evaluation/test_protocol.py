import numpy as np
import pandas as pd
import pytest

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.evaluation.protocol import (
    DEFAULT_HORIZONS,
    default_horizons,
    default_plan,
    make_plan,
    parse_horizons,
    parse_split,
    tgcn_plan,
)


def test_default_split_matches_check_figures():
    plan = default_plan(2016, input_len=12, horizons=(3, 6, 12))
    # S = 2016 - 12 - 12 + 1 = 1993: 1395 train, 199 validation, 399 test
    assert plan.test_samples == 399
    assert plan.validation_times.size == 199
    assert plan.validation_times[0] == 12 + 1395
    assert plan.average.times[0] == 12 + 1395 + 199
    assert plan.average.times[-1] == 2016 - 12  # last valid sample time T - H
    assert plan.fit_stop == 12 + 1394 + 12  # last train sample's targets end here
    assert [g.steps for g in plan.test_groups] == [(3,), (6,), (12,)]
    assert plan.average.steps == tuple(range(1, 13))


def test_split_depends_on_largest_horizon():
    assert default_plan(100, 12, (3,)).test_samples == round((100 - 12 - 3 + 1) * 0.2)
    assert default_plan(100, 12, (3, 24)).test_samples == round((100 - 12 - 24 + 1) * 0.2)


def test_validation_never_overlaps_test_and_follows_train():
    plan = default_plan(500, 12, (1, 12), (0.6, 0.2, 0.2))
    assert plan.validation_times.max() < plan.average.times.min()
    assert np.all(np.diff(plan.validation_times) == 1)


def test_tgcn_windows():
    plan = tgcn_plan(2016)
    cut = int(0.8 * 2016)  # 1612, 404 test rows
    sizes = {g.horizon_steps: g.times.size for g in plan.test_groups}
    assert sizes == {3: 404 - 12 - 3, 6: 404 - 12 - 6, 9: 404 - 12 - 9, 12: 404 - 12 - 12}
    first = plan.test_groups[0]
    assert first.times[0] == cut + 12  # inputs test[0:12]
    assert first.steps == (1, 2, 3)  # pooled over steps 1..h
    # the model never fits on validation or test rows
    assert plan.fit_stop == cut - round(0.1 * cut)
    assert plan.validation_times.min() - 12 >= plan.fit_stop
    assert plan.validation_times.max() + 12 <= cut


@pytest.mark.parametrize("text", ["0.7,0.3", "0.5,0.5,0.5", "a,b,c", "0,0.5,0.5", "0.9,0.1,0"])
def test_bad_split(text):
    with pytest.raises(ConfigError, match="split"):
        parse_split(text)


def test_parse_options():
    assert parse_split("0.6,0.2,0.2") == (0.6, 0.2, 0.2)
    assert parse_horizons("12,3,6") == (3, 6, 12)
    with pytest.raises(ConfigError):
        parse_horizons("0,3")


def test_unknown_protocol_and_fixed_tgcn_split():
    with pytest.raises(UnknownNameError, match="default, tgcn"):
        make_plan("paper", 2016)
    with pytest.raises(ConfigError, match="tgcn"):
        make_plan("tgcn", 2016, split=(0.7, 0.1, 0.2))


def test_too_short_series():
    with pytest.raises(ConfigError, match="too few"):
        default_plan(20, 12, (12,))


@pytest.mark.parametrize(
    ("step", "horizons"),
    [
        ("5min", (3, 6, 12)),  # 15, 30, 60 minutes
        ("15min", (1, 2, 4)),
        ("30min", (1, 2)),  # 15 minutes rounds to one step, the duplicate is dropped
        ("1h", (1, 3, 6)),  # 1, 3, 6 hours
        ("1D", (1, 3, 7)),  # 1, 3, 7 days
        ("7D", (1,)),
    ],
)
def test_default_horizons_follow_the_step(step, horizons):
    assert default_horizons(pd.Timedelta(step)) == horizons


def test_default_horizons_without_a_step():
    assert default_horizons(None) == DEFAULT_HORIZONS == (3, 6, 12)


def test_make_plan_takes_the_default_horizons_from_the_step():
    hourly = make_plan("default", 500, step=pd.Timedelta("1h"))
    assert [g.steps for g in hourly.test_groups] == [(1,), (3,), (6,)]
    assert hourly.average.steps == tuple(range(1, 7))
    assert [g.steps for g in make_plan("default", 500).test_groups] == [(3,), (6,), (12,)]
    given = make_plan("default", 500, horizons=(2, 4), step=pd.Timedelta("1h"))
    assert [g.steps for g in given.test_groups] == [(2,), (4,)]  # given horizons win
    assert make_plan("tgcn", 2016, step=pd.Timedelta("1h")).test_groups[-1].horizon_steps == 12
