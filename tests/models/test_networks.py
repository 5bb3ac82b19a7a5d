"""One contract for every neural network: shapes, gradients, learning, save and load."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from urbanflow.graph.graph import SensorGraph
from urbanflow.models.networks import NETWORKS, NetworkSpec, build_network, parameter_count

SENSORS, INPUT_LEN, HORIZON, STEPS_PER_DAY = 6, 12, 4, 288


def ring_graph(n: int) -> SensorGraph:
    dense = np.eye(n, dtype=np.float32)
    for i in range(n):
        dense[i, (i + 1) % n] = dense[(i + 1) % n, i] = 0.6
    return SensorGraph.from_dense(dense)


def spec() -> NetworkSpec:
    return NetworkSpec(SENSORS, INPUT_LEN, HORIZON, STEPS_PER_DAY, graph=ring_graph(SENSORS))


def inputs(batch: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(batch, INPUT_LEN, SENSORS, 1, generator=generator)
    mask = torch.ones_like(values)
    x = torch.cat([values, mask], dim=-1)
    start = torch.randint(0, STEPS_PER_DAY - INPUT_LEN, (batch, 1), generator=generator)
    tod = start + torch.arange(INPUT_LEN)
    dow = torch.randint(0, 7, (batch, 1), generator=generator).expand(batch, INPUT_LEN)
    return x, tod, dow.contiguous()


@pytest.fixture(params=sorted(NETWORKS))
def name(request):
    return request.param


def test_output_shape_and_finite(name):
    torch.manual_seed(0)
    network = build_network(name, spec(), {})
    out = network(*inputs())
    assert out.shape == (3, HORIZON, SENSORS)
    assert torch.isfinite(out).all()
    assert parameter_count(network) > 0


def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    network = build_network(name, spec(), {})
    network(*inputs()).square().mean().backward()
    missing = [n for n, p in network.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.slow  # 60 optimiser steps per network
def test_loss_falls_when_overfitting_one_batch(name):
    torch.manual_seed(0)
    network = build_network(name, spec(), {})
    x, tod, dow = inputs(batch=8, seed=1)
    target = torch.sin(x[:, -HORIZON:, :, 0] * 2.0)  # a learnable function of the inputs
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = (network(x, tod, dow) - target).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]


def test_save_load_gives_identical_predictions(name, tmp_path):
    torch.manual_seed(0)
    network = build_network(name, spec(), {}).eval()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    torch.manual_seed(123)  # a different initialisation, then overwritten
    copy = build_network(name, spec(), {}).eval()
    copy.load_state_dict(load_file(str(path)))
    x = inputs(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(network(*x), copy(*x), rtol=0, atol=0)


def test_missing_inputs_are_masked_not_nan(name):
    network = build_network(name, spec(), {})
    x, tod, dow = inputs()
    x[:, :5, 2, 0] = 0.0
    x[:, :5, 2, 1] = 0.0
    assert torch.isfinite(network(x, tod, dow)).all()


def test_every_network_is_in_the_model_registry():
    from urbanflow.models.registry import MODELS, neural_names

    assert set(NETWORKS) <= set(neural_names())
    assert {MODELS[name].presets["network"] for name in neural_names()} == set(NETWORKS)


def test_a_dense_network_too_large_for_the_machine_is_refused_naming_one_that_scales():
    from urbanflow.errors import ConfigError
    from urbanflow.models.networks import NetworkSpec, check_dense_memory

    memory = 24 * 2**30
    small, large = NetworkSpec(207, 12, 12, 288), NetworkSpec(30_000, 12, 12, 288)
    for name in ("gwnet", "agcrn", "staeformer"):
        check_dense_memory(name, small, {}, 32, memory)  # Los-loop fits
        with pytest.raises(ConfigError, match=r"square of the sensors.*use stid-graph or stid"):
            check_dense_memory(name, large, {}, 32, memory)
    for name in ("stid", "stgcn", "tgcn"):  # sparse or per-sensor: never refused
        check_dense_memory(name, large, {}, 32, memory)
    # the estimate follows the options: fewer heads and layers, less attention
    with pytest.raises(ConfigError) as refused:
        check_dense_memory("staeformer", NetworkSpec(2_000, 12, 12, 288), {}, 32, memory)
    check_dense_memory(
        "staeformer", NetworkSpec(2_000, 12, 12, 288), {"heads": 1, "num_layers": 1}, 1, memory
    )
    assert "2,000 × 2,000" in str(refused.value)


@pytest.mark.parametrize("neighbours", [False, True])
def test_stid_forecasts_a_subset_of_sensors_as_it_forecasts_them_among_all(neighbours):
    network = build_network("stid", spec(), {"neighbours": neighbours, "highway": True}).eval()
    assert network.sensor_subsets
    x, tod, dow = inputs()
    sensors = torch.tensor([4, 1, 2])
    with torch.no_grad():
        whole = network(x, tod, dow)
        subset = network(x, tod, dow, sensors=sensors)
    assert subset.shape == (3, HORIZON, 3)
    torch.testing.assert_close(subset, whole[..., sensors])
