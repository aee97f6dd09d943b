"""The packed inference linear: same results as F.linear, repacked when the weight changes, never
on the training path."""

import pytest
import torch
import torch.nn.functional as F

from aar.transformer import fast_linear
from aar.transformer.fast_linear import linear

needs_onednn = pytest.mark.skipif(not fast_linear._HAS_ONEDNN, reason="this torch build has no oneDNN")


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return torch.nn.Linear(32, 48)


@needs_onednn
@pytest.mark.parametrize("shape", [(2, 32), (3, 5, 32)])
def test_packed_equals_f_linear(layer, shape):
    x = torch.randn(shape)
    with torch.inference_mode():
        assert fast_linear.uses_packed(x, layer)
        assert torch.allclose(linear(x, layer), F.linear(x, layer.weight, layer.bias), atol=1e-5)
        assert torch.allclose(linear(x, layer, gelu=True), F.gelu(layer(x), approximate="tanh"), atol=1e-5)
        bias = torch.randn(48)
        assert torch.allclose(linear(x, layer, bias), F.linear(x, layer.weight, bias), atol=1e-5)


@needs_onednn
def test_bfloat16_is_packed_too(layer):
    layer = layer.to(torch.bfloat16)
    x = torch.randn(4, 32, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert fast_linear.uses_packed(x, layer)
        assert torch.allclose(linear(x, layer).float(), layer(x).float(), atol=2e-2)


@needs_onednn
def test_repacked_after_an_update_and_after_a_move(layer):
    x = torch.randn(2, 32)
    with torch.inference_mode():
        before = linear(x, layer)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    F.linear(x, layer.weight, layer.bias).square().sum().backward()
    opt.step()
    with torch.inference_mode():
        after = linear(x, layer)
        assert not torch.allclose(before, after)
        assert torch.allclose(after, layer(x), atol=1e-5)
    layer.to(torch.bfloat16)
    with torch.inference_mode():
        assert torch.allclose(linear(x.bfloat16(), layer).float(), layer(x.bfloat16()).float(), atol=2e-2)


def test_training_path_is_f_linear_with_gradients(layer):
    x = torch.randn(2, 32, requires_grad=True)
    assert not fast_linear.uses_packed(x, layer)
    y = linear(x, layer, gelu=True)
    y.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    assert not hasattr(layer, "_packed_weight")
