import pytest
import torch

from edgegan.errors import ConfigError, UnknownNameError
from edgegan.models import build_discriminator, build_generator, count_params, family_names, get_family
from edgegan.models.dcgan import dcgan_param_count

# The paper's Table 1 (MNIST, nc=1), plus d=256: the teacher of the 1669:1 result.
PAPER = {2: 28_351, 4: 62_077, 8: 145_657, 16: 377_329, 32: 1_098_721, 48: 2_164_177,
         64: 3_573_697, 128: 12_652_417, 256: 47_324_929}


@pytest.mark.parametrize("d,expected", sorted(PAPER.items()))
def test_paper_parameter_counts(d, expected):
    g = build_generator("dcgan", d=d, nc=1)
    assert count_params(g) == expected
    assert 672 * d * d + 12831 * d + 1 == expected == dcgan_param_count(d)


def test_mnist_compression_ratio_is_the_papers():
    assert round(PAPER[256] / PAPER[2]) == 1669


@pytest.mark.parametrize("size,nc", [(32, 1), (32, 3), (64, 3)])
def test_shapes_and_range(size, nc):
    g = build_generator("dcgan", d=2, nc=nc, image_size=size).eval()
    z = torch.randn(5, 100)
    y = g(z)
    assert y.shape == (5, nc, size, size)
    assert y.abs().max() <= 1.0
    assert torch.allclose(g(z[:, :, None, None]), y)
    d = build_discriminator("dcgan", d=2, nc=nc, image_size=size)
    assert d(y).shape == (5,)


def test_layers_are_the_papers():
    g = build_generator("dcgan", d=4)
    convs = [m for m in g.modules() if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d))]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (100, 32, 4, 1, 0), (32, 16, 4, 2, 1), (16, 8, 4, 2, 1), (8, 4, 4, 2, 1), (4, 1, 1, 1, 0)]
    assert convs[-1].bias is not None and all(c.bias is None for c in convs[:-1])


def test_registry_errors():
    assert "dcgan" in family_names()
    with pytest.raises(UnknownNameError, match="did you mean 'dcgan'|Did you mean 'dcgan'"):
        get_family("dcgna")
    with pytest.raises(ConfigError):
        build_generator("dcgan", d=0)
    with pytest.raises(ConfigError):
        build_generator("dcgan", d=2, image_size=48)


@pytest.mark.onnx
@pytest.mark.parametrize("family,args,shape", [
    ("resnet_i2i", dict(ngf=8, in_channels=3, nc=3, height=32, width=32, scale=2, n_down=0, n_blocks=2), (1, 3, 16, 16)),
    ("mobile_i2i", dict(ngf=8, in_channels=1, nc=3, height=32, width=32, scale=1, n_down=2, n_blocks=1), (1, 1, 32, 32)),
    ("dcgan", dict(d=2), (1, 100)),
])
def test_onnx_mac_count_equals_the_module_s(tmp_path, family, args, shape):
    """A foreign (ONNX) teacher's MACs are counted on its graph by the module counter's rule: the same number
    for the same network, ConvTranspose, grouped (depthwise) convolutions and the latent's first layer included."""
    pytest.importorskip("onnx")
    from edgegan.models import build_generator, count_macs, count_macs_onnx

    g = build_generator(family, **args).eval()
    x = torch.zeros(*shape)
    torch.onnx.export(g, x, tmp_path / "g.onnx", dynamo=False)
    assert count_macs_onnx(tmp_path / "g.onnx", shape) == count_macs(g, x) > 0


def test_onnx_mac_count_is_none_where_the_graph_cannot_be_counted(tmp_path):
    """A graph with no input, or an input of another rank: None (the MACs column stays empty), not an error."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from edgegan.models import count_macs_onnx, count_macs_onnx_or_none

    const = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    onnx.save(helper.make_model(helper.make_graph([const], "no_input", [], [y])), tmp_path / "c.onnx")
    with pytest.raises(ValueError, match="no input"):
        count_macs_onnx(tmp_path / "c.onnx", (1, 4))
    assert count_macs_onnx_or_none(tmp_path / "c.onnx", (1, 4)) is None
    g = build_generator("dcgan", d=1).eval()
    torch.onnx.export(g, torch.zeros(1, 100), tmp_path / "g.onnx", dynamo=False)
    assert count_macs_onnx_or_none(tmp_path / "g.onnx", (1, 100, 1, 1)) is None  # rank 4 for a rank-2 input


def test_i2i_stream_act_bounds_every_residual_sum_and_refuses_unknown_names():
    g = build_generator("mobile_i2i", ngf=4, in_channels=3, nc=3, height=16, width=16, scale=2, n_down=0,
                        n_blocks=2, stream_act="relu6")
    sums = []
    for m in g.net:
        if type(m).__name__ == "ResBlock":
            m.register_forward_hook(lambda _m, _a, o: sums.append(o))
    with torch.no_grad():
        g.train()(torch.randn(2, 3, 8, 8) * 3)
    assert len(sums) == 2 and all(float(s.min()) >= 0 and float(s.max()) <= 6 for s in sums)  # ReLU6 in place
    with pytest.raises(ConfigError, match="stream_act"):
        build_generator("mobile_i2i", ngf=4, in_channels=3, nc=3, height=16, width=16, scale=2, n_down=0,
                        stream_act="tanh")


def test_i2i_act_relu6_bounds_every_convolution_s_activation_and_refuses_unknown_names():
    """``act="relu6"``: every activation after a convolution is in [0, 6] (a bounded int8 tensor); the
    default keeps plain ReLUs, so runs written before the option load the same network."""
    kw = dict(ngf=4, in_channels=3, nc=3, height=16, width=16, scale=2, n_down=1, n_blocks=2, block="mobile")
    g = build_generator("mobile_i2i", **kw, act="relu6")
    acts = []
    for m in g.modules():
        assert not isinstance(m, torch.nn.ReLU)
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.constant_(m.weight, 10.0)  # normalised values x10: every activation saturates somewhere
        if isinstance(m, torch.nn.ReLU6):
            m.register_forward_hook(lambda _m, _a, o: acts.append(o.clone()))
    with torch.no_grad():
        g.train()(torch.randn(2, 3, 8, 8) * 3)
    assert len(acts) == 1 + 2 + 2 * 3 + 2 * 2  # stem, down stage, 3 per block body, 2 per up stage
    assert all(float(a.max()) == 6.0 and float(a.min()) == 0.0 for a in acts)
    plain = build_generator("mobile_i2i", **kw)
    assert not any(isinstance(m, torch.nn.ReLU6) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.ReLU) for m in plain.modules()) == len(acts)
    with pytest.raises(ConfigError, match="act must be one of"):
        build_generator("mobile_i2i", **kw, act="gelu")


def test_tiny_students_are_deterministic():
    """edgegan.testing's small real models: the same seed gives the same weights, call after call (the
    random teacher's BatchNorm scales once came from the global generator's state)."""
    from edgegan.testing import tiny_conditional_student, tiny_student

    for make in (tiny_student, tiny_conditional_student):
        torch.manual_seed(123)
        a = make(steps=3)
        torch.randn(5)  # the caller's global generator moved between the calls
        b = make(steps=3)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
        c = make(steps=3, seed=1)
        assert not torch.equal(a.net[0].weight, c.net[0].weight)
