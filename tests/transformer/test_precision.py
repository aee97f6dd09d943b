"""Precision choice: reduced precisions only where the device runs them fast (each branch forced
here), int8 weights that stay close to float32, and `aar generate --dtype` saying what ran."""

import dataclasses
import json

import pytest
import torch

from aar.cli.main import main
from aar.transformer import AAR, AARConfig, fast_linear
from aar.transformer.precision import apply_precision, choose_precision
from tests.transformer.conftest import random_codebook_sat

REAL = fast_linear.cpu_support()


def pretend(monkeypatch, **fields):
    support = dataclasses.replace(REAL, **fields)
    monkeypatch.setattr(fast_linear, "cpu_support", lambda: support)
    monkeypatch.setattr("aar.transformer.precision.cpu_support", lambda: support)


def test_bfloat16_on_a_cpu_without_bfloat16_units_runs_float32(monkeypatch):
    pretend(monkeypatch, capability="AVX2", native_bf16=False)
    chosen = choose_precision("bfloat16", "cpu")
    assert (chosen.name, chosen.dtype, chosen.requested) == ("float32", torch.float32, "bfloat16")
    assert chosen.note == ("precision: float32 on CPU (AVX2), not bfloat16: this CPU has no bfloat16 units "
                           "(AVX512-BF16 or AMX), and emulated bfloat16 is slower than float32")
    assert choose_precision("auto", "cpu").name == "float32"


def test_bfloat16_on_a_cpu_with_bfloat16_units(monkeypatch):
    pretend(monkeypatch, capability="AVX512", native_bf16=True)
    for asked in ("bfloat16", "auto"):
        chosen = choose_precision(asked, "cpu")
        assert (chosen.name, chosen.dtype) == ("bfloat16", torch.bfloat16)
        assert chosen.note == "precision: bfloat16 on CPU (AVX512)"


def test_int8_is_a_cpu_path_and_needs_an_engine(monkeypatch):
    pretend(monkeypatch, capability="AVX2", int8=True)
    assert choose_precision("int8", "cpu").name == "int8"
    assert choose_precision("int8", "cpu").dtype == torch.float32
    assert choose_precision("auto", "cpu").name != "int8"
    off = choose_precision("int8", "cuda")
    assert off.name == "float32" and "int8 weights are a CPU path" in off.note
    pretend(monkeypatch, int8=False)
    assert choose_precision("int8", "cpu").name == "float32"
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, int8, auto, got 'fp8'"):
        choose_precision("fp8", "cpu")


def small_model() -> AAR:
    torch.manual_seed(0)
    model = AAR(AARConfig(depth=2, width=64, num_heads=2), random_codebook_sat())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.skipif(not REAL.int8, reason="this PyTorch has no int8 linear for this CPU")
def test_int8_weights_serve_the_per_token_products_and_stay_close():
    model = small_model()
    codes = [torch.randint(0, model.config.vocab_size, (2, s), generator=torch.Generator().manual_seed(1))
             for s in model.scales]
    cond = torch.randn(2, 512)
    with torch.inference_mode():
        reference = model(cond, codes)
    apply_precision(model, choose_precision("int8", "cpu"))
    int8_layers = sorted(n for n, m in model.named_modules() if getattr(m, "_int8_weight", None) is not None)
    assert int8_layers == sorted([f"blocks.{i}.{name}" for i in range(2)
                                  for name in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")] + ["head.out"])
    with torch.inference_mode():
        quantized = model(cond, codes)
        assert fast_linear.kernel_for(torch.randn(3, 64), model.blocks[0].mlp.fc1) == "int8"
        out = model.generate(cond, seed=0)
    error = ((quantized - reference).norm() / reference.norm()).item()
    assert 1e-4 < error < 0.05  # int8 changes the logits, by a little
    assert (quantized.argmax(-1) == reference.argmax(-1)).float().mean() > 0.9
    assert torch.isfinite(out.audio).all()
    apply_precision(model, choose_precision("float32", "cpu"))
    with torch.inference_mode():
        assert torch.equal(model(cond, codes), reference)


def test_generate_cli_says_what_precision_ran(capsys, tmp_path, monkeypatch):
    model_dir = small_model().save_pretrained(tmp_path / "model")
    pretend(monkeypatch, capability="AVX2", native_bf16=False)
    assert main(["generate", "--model", str(model_dir), "--dtype", "bfloat16", "--seed", "3", "--num", "1",
                 "--device", "cpu", "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "precision: float32 on CPU (AVX2), not bfloat16" in err
    settings = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert (settings["dtype"], settings["dtype_requested"]) == ("float32", "bfloat16")


def test_codec_precisions_follow_the_same_rule(monkeypatch):
    from aar.transformer.precision import CODEC_PRECISIONS

    pretend(monkeypatch, capability="AVX512", native_bf16=False, native_fp16=True)
    assert choose_precision("float16", "cpu", CODEC_PRECISIONS).dtype == torch.float16
    assert choose_precision("bfloat16", "cpu", CODEC_PRECISIONS).name == "float32"
    assert choose_precision("float16", "cuda", CODEC_PRECISIONS).name == "float16"
    with pytest.raises(ValueError, match="must be one of float32, bfloat16, float16, got 'int8'"):
        choose_precision("int8", "cpu", CODEC_PRECISIONS)
