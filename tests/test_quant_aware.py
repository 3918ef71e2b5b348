"""Quantization-aware fine-tuning (edgegan.quant_aware): the int8 grids it trains through, closed form."""

from __future__ import annotations

import pytest
import torch

from edgegan.models import build_generator
from edgegan.quant_aware import LEVELS, QuantAware, _Grid, quant_points

ARGS = dict(ngf=4, in_channels=3, nc=3, height=16, width=16, scale=2, n_down=0, n_blocks=2, block="mobile")


def test_grid_rounds_to_256_levels_over_its_range_and_passes_the_gradient_straight():
    g = _Grid()
    x = torch.linspace(-1.0, 3.0, 1001, requires_grad=True)
    y = g(x, training=True)  # the first batch sets the range: [-1, 3]
    step = 4.0 / (LEVELS - 1)
    k = (y.detach() + 1.0) / step
    assert torch.allclose(k, k.round(), atol=1e-4)  # every value on the grid
    assert (y.detach() - x.detach()).abs().max() <= step / 2 + 1e-6  # and the nearest level
    assert len(torch.unique(y.detach().round(decimals=5))) == LEVELS
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight-through
    # the range moves by a moving average in training and stays put in eval
    g(torch.tensor([0.0, 7.0]), training=True)
    assert g.hi == pytest.approx(0.95 * 3 + 0.05 * 7)
    hi = g.hi
    g(torch.tensor([0.0, 100.0]), training=False)
    assert g.hi == hi
    # values past the range clip to its ends
    assert float(g(torch.tensor([100.0]), training=False)) == pytest.approx(max(g.hi, 0.0), abs=1e-5)


def test_tanh_grid_is_tflite_s_fixed_int8_grid():
    g = _Grid((-1.0, 127 / 128))
    y = g(torch.linspace(-1, 1, 999), training=True)
    assert torch.allclose(y * 128, (y * 128).round(), atol=1e-4)
    assert float(y.max()) == pytest.approx(127 / 128) and (g.lo, g.hi) == (-1.0, 127 / 128)  # never moved


def test_points_are_the_tensors_an_int8_file_stores_and_removal_restores_the_float_model():
    torch.manual_seed(0)
    m = build_generator("mobile_i2i", **ARGS)
    names = [n for n, _, _ in quant_points(m)]
    # stem ReLU, 3 ReLUs per block body (the last is popped before the sum), the sum and the body's last BN,
    # two ReLUs of the up-sampling stage, the Tanh head
    assert len(names) == 1 + 2 * (3 + 2) + 2 + 1
    assert {"net.3", "net.3.body.10", "net.4", "net.4.body.10"} <= set(names)
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    qa = QuantAware(m)
    m.train()
    with qa, torch.no_grad():
        m(x)  # training mode: the grids take this batch's ranges (and BatchNorm its statistics)
        m.eval()
        q = m(x)
    assert set(qa.grids) == {"input", *names} and all(v["hi"] is not None for v in qa.describe().values())
    assert torch.allclose(q * 128, (q * 128).round(), atol=1e-3)  # the head on tanh's int8 grid
    with torch.no_grad():
        ref = m(x)  # hooks gone: the float model
        assert 0 < float((q - ref).abs().max()) < 0.5  # rounded, not broken
        with qa:
            assert torch.equal(m(x), q)  # eval: the grids are frozen
        assert torch.equal(m(x), ref)
