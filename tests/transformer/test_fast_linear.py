"""The CPU inference linear: every kernel equals F.linear, a kernel runs only where the CPU supports
its dtype (each branch forced here, whatever this machine is), the default rule picks by the CPU's
capability and repeats exactly, measuring picks the fastest kernel per shape, weights are repacked
when they change, and training never takes these paths."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from aar.transformer import fast_linear
from aar.transformer.fast_linear import CpuSupport, linear

REAL = fast_linear.cpu_support()
needs_packing = pytest.mark.skipif(not REAL.packable(torch.float32), reason="this torch build has no oneDNN")


@pytest.fixture(autouse=True)
def fresh_decisions(monkeypatch):
    monkeypatch.delenv(fast_linear.KERNEL_ENV, raising=False)
    fast_linear.set_kernel(None)
    fast_linear._refused.clear()
    yield
    fast_linear.set_kernel(None)
    fast_linear._refused.clear()


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return torch.nn.Linear(32, 48)


def pretend(monkeypatch, **fields) -> CpuSupport:
    """Make the module see a CPU with ``fields`` changed (e.g. no oneDNN bfloat16)."""
    support = dataclasses.replace(REAL, **fields)
    monkeypatch.setattr(fast_linear, "cpu_support", lambda: support)
    return support


def test_support_is_asked_of_pytorch():
    assert REAL.capability == torch.backends.cpu.get_cpu_capability()
    assert REAL.capability in REAL.summary()
    if REAL.onednn:
        assert REAL.onednn_bf16 == torch.ops.mkldnn._is_mkldnn_bf16_supported()
        assert REAL.packable(torch.float32)
    assert not REAL.packable(torch.float64)


@needs_packing
@pytest.mark.parametrize("kernel", fast_linear.KERNELS)
@pytest.mark.parametrize("shape", [(2, 32), (3, 5, 32)])
def test_every_kernel_equals_f_linear(layer, shape, kernel):
    fast_linear.set_kernel(kernel)
    x = torch.randn(shape)
    bias = torch.randn(48)
    with torch.inference_mode():
        assert fast_linear.kernel_for(x, layer, gelu=True) == kernel
        assert torch.allclose(linear(x, layer), F.linear(x, layer.weight, layer.bias), atol=1e-5)
        assert torch.allclose(linear(x, layer, gelu=True), F.gelu(layer(x), approximate="tanh"), atol=1e-5)
        assert torch.allclose(linear(x, layer, bias), F.linear(x, layer.weight, bias), atol=1e-5)
    assert hasattr(layer, "_packed_weight") == (kernel != "aten")


def test_bfloat16_without_onednn_support_runs_on_aten(layer, monkeypatch):
    """An AVX2-only CPU: oneDNN refuses bfloat16, so only ATen may serve it, even when pinned."""
    pretend(monkeypatch, onednn_bf16=False, native_bf16=False)
    layer = layer.to(torch.bfloat16)
    x = torch.randn(4, 32, dtype=torch.bfloat16)
    for pinned in (None, "packed", "packed-fused"):
        fast_linear.set_kernel(pinned)
        with torch.inference_mode():
            assert fast_linear.candidates(torch.bfloat16, gelu=True) == ("aten",)
            assert not fast_linear.uses_packed(x, layer, gelu=True)
            assert torch.equal(linear(x, layer, gelu=True), F.gelu(F.linear(x, layer.weight, layer.bias), approximate="tanh"))
    assert not hasattr(layer, "_packed_weight")


@needs_packing
def test_bfloat16_with_onednn_support_is_a_packing_candidate(monkeypatch):
    pretend(monkeypatch, onednn_bf16=True)
    assert fast_linear.candidates(torch.bfloat16, gelu=True) == fast_linear.KERNELS
    assert fast_linear.candidates(torch.bfloat16, gelu=False) == ("packed", "aten")
    pretend(monkeypatch, onednn=False, onednn_bf16=False)
    assert fast_linear.candidates(torch.float32, gelu=True) == ("aten",)


@pytest.mark.parametrize("policy", ["auto", "measure"])
def test_bfloat16_never_crashes_on_this_cpu(layer, policy):
    """Whatever this machine is, a bfloat16 inference linear runs (packed or not) and matches."""
    fast_linear.set_kernel(policy)
    layer = layer.to(torch.bfloat16)
    x = torch.randn(6, 32, dtype=torch.bfloat16)
    with torch.inference_mode():
        for _ in range(2 * len(fast_linear.KERNELS) * fast_linear.TRIALS_PER_KERNEL):
            y = linear(x, layer, gelu=True)
    assert torch.allclose(y.float(), F.gelu(layer(x), approximate="tanh").float(), atol=2e-2)
    assert hasattr(layer, "_packed_weight") == REAL.packable(torch.bfloat16)


@needs_packing
def test_a_refused_packing_falls_back_to_aten_with_one_warning(layer, monkeypatch):
    """Should a CPU be misreported (oneDNN refusing a dtype said to be supported), the call still
    succeeds on ATen, the dtype is never packed again, and the user is told once."""

    def refuse(weight, _):
        raise RuntimeError("mkldnn_reorder_linear_weight: bf16 path needs the cpu support avx512bw\nmore")

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", refuse)
    x = torch.randn(4, 32)
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match=r"cannot pack float32 .*avx512bw; using ATen") as seen:
        y = linear(x, layer)
        linear(x, layer)
    assert len(seen) == 1
    assert torch.allclose(y, F.linear(x, layer.weight, layer.bias), atol=1e-6)
    assert fast_linear.candidates(torch.float32, gelu=False) == ("aten",)


@pytest.mark.parametrize(("capability", "onednn", "gelu", "rows", "expected"), [
    ("AVX2", True, True, 150, "packed"),
    ("AVX2", True, True, 9, "packed"),
    ("AVX2", True, True, 8, "packed-fused"),
    ("AVX2", True, False, 2, "packed"),
    ("AVX512", True, True, 1200, "packed-fused"),
    ("AVX512", True, False, 1200, "packed"),
    ("DEFAULT", False, True, 2, "aten"),
])
def test_the_default_rule_follows_the_cpu(monkeypatch, capability, onednn, gelu, rows, expected):
    pretend(monkeypatch, capability=capability, onednn=onednn)
    assert fast_linear.rule_kernel(torch.float32, gelu, rows) == expected
    if onednn:
        layer = torch.nn.Linear(32, 48)
        with torch.inference_mode():
            assert fast_linear.kernel_for(torch.randn(rows, 32), layer, gelu) == expected
    pretend(monkeypatch, capability=capability, onednn=onednn, onednn_bf16=False)
    assert fast_linear.rule_kernel(torch.bfloat16, gelu, rows) == "aten"


def test_the_default_rule_repeats_exactly(layer):
    """``auto`` never measures: the same call runs the same kernel, so results repeat bitwise."""
    x = torch.randn(7, 32)
    with torch.inference_mode():
        first = [linear(x, layer, gelu=True) for _ in range(3 * len(fast_linear.KERNELS))]
        expected_kernel = fast_linear.rule_kernel(torch.float32, True, 7)
        assert fast_linear.kernel_for(x, layer, gelu=True) == expected_kernel
    assert all(torch.equal(y, first[0]) for y in first)
    assert fast_linear.decisions() == {}


class FakeClock:
    """``perf_counter`` for the module: each call of kernel K takes ``cost[K]`` seconds."""

    def __init__(self, monkeypatch, cost: dict[str, float]):
        self.now, self.cost, self.calls = 0.0, cost, []
        real_run = fast_linear._run

        def run(kernel, *args):
            self.calls.append(kernel)
            self.now += cost[kernel]
            return real_run(kernel, *args)

        monkeypatch.setattr(fast_linear, "_run", run)
        monkeypatch.setattr(fast_linear.time, "perf_counter", lambda: self.now)


@needs_packing
@pytest.mark.parametrize("fastest", fast_linear.KERNELS)
def test_the_fastest_measured_kernel_serves_the_shape(layer, monkeypatch, fastest):
    fast_linear.set_kernel("measure")
    cost = {k: 1.0 for k in fast_linear.KERNELS}
    cost[fastest] = 0.5
    clock = FakeClock(monkeypatch, cost)
    x = torch.randn(3, 32)
    trials = fast_linear.TRIALS_PER_KERNEL * len(fast_linear.KERNELS)
    with torch.inference_mode():
        for _ in range(trials + 4):
            assert torch.allclose(linear(x, layer, gelu=True), F.gelu(layer(x), approximate="tanh"), atol=1e-5)
    assert sorted(clock.calls[:trials]) == sorted(fast_linear.KERNELS * fast_linear.TRIALS_PER_KERNEL)
    assert clock.calls[trials:] == [fastest] * 4
    assert fast_linear.decisions() == {"float32 32x48 gelu rows<=4": fastest}


@needs_packing
def test_decisions_are_per_row_bucket_and_ties_keep_the_preferred(layer, monkeypatch):
    fast_linear.set_kernel("measure")
    clock = FakeClock(monkeypatch, {"packed": 1.0, "packed-fused": 1.0, "aten": 0.97})  # within TIE
    with torch.inference_mode():
        for rows in (1, 2, 3, 4, 5, 8, 9, 200):
            for _ in range(2 * fast_linear.TRIALS_PER_KERNEL):
                linear(torch.randn(rows, 32), layer)
    assert fast_linear.decisions() == {f"float32 32x48 rows<={n}": "packed" for n in (1, 2, 4, 8, 16, 256)}
    assert clock.calls.count("aten") == 6 * fast_linear.TRIALS_PER_KERNEL


def test_pinned_kernel_from_the_environment(layer, monkeypatch):
    monkeypatch.setenv(fast_linear.KERNEL_ENV, "aten")
    x = torch.randn(2, 32)
    with torch.inference_mode():
        assert fast_linear.kernel_for(x, layer) == "aten"
        linear(x, layer)
    assert not hasattr(layer, "_packed_weight") and fast_linear.decisions() == {}
    monkeypatch.setenv(fast_linear.KERNEL_ENV, "fastest")
    with pytest.raises(ValueError, match=r"AAR_LINEAR_KERNEL must be one of packed, packed-fused, aten, auto, measure, got 'fastest'"):
        with torch.inference_mode():
            fast_linear.kernel_for(x, layer)
    with pytest.raises(ValueError, match="kernel must be one of"):
        fast_linear.set_kernel("mkl")


@needs_packing
def test_repacked_after_an_update_and_after_a_move(layer):
    fast_linear.set_kernel("packed")
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
    layer.double()  # a dtype no kernel packs: ATen, on the new weights
    with torch.inference_mode():
        assert torch.allclose(linear(x.double(), layer), layer(x.double()), atol=1e-12)
    layer.float()
    with torch.inference_mode():
        assert fast_linear.uses_packed(x, layer)
        assert torch.allclose(linear(x, layer), layer(x), atol=1e-5)


def test_training_path_is_f_linear_with_gradients(layer):
    x = torch.randn(2, 32, requires_grad=True)
    assert not fast_linear.uses_packed(x, layer)
    y = linear(x, layer, gelu=True)
    y.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    assert not hasattr(layer, "_packed_weight")
    assert fast_linear.decisions() == {}


def test_the_cached_block_gelu_is_atens_tanh_gelu(monkeypatch):
    monkeypatch.setattr(fast_linear, "_GELU_CHUNK", 1000)  # several blocks and a ragged last one
    monkeypatch.setattr(fast_linear, "_GELU_ATEN_BELOW", 100)
    x = torch.cat((torch.linspace(-12, 12, 2401), torch.randn(3 * 7 * 111)))
    y = fast_linear.gelu_tanh_(x.clone().view(-1, 7))
    assert torch.allclose(y.view(-1), F.gelu(x, approximate="tanh"), rtol=1e-6, atol=1e-6)
    assert not torch.equal(y.view(-1), F.gelu(x, approximate="tanh"))  # computed the other way
    small = torch.randn(5, 7)
    assert torch.equal(fast_linear.gelu_tanh_(small.clone()), F.gelu(small, approximate="tanh"))
