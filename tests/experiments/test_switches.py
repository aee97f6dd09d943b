"""Every ablation switch changes the model as documented: token counts, parameter counts, the
discriminator list, the window; and the RVQ baseline is plain residual VQ at 75 Hz."""

from __future__ import annotations

import pytest
import torch

from aar.experiments import ExperimentSpec, variant_config
from aar.tokenizer import SAT, SATConfig
from aar.tokenizer.discriminator import DiscriminatorConfig
from aar.tokenizer.hifigan_discriminators import build_discriminator, discriminator_names
from aar.train.config import read_config
from tests.conftest import sine_mix

TINY = dict(SATConfig.preset("tiny").to_dict(), codebook_size=64, kmeans_iters=2)


def _variants(name: str) -> dict:
    return {v.name: v.config for v in ExperimentSpec.load(name).variants}


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_schedule_experiment_token_counts_and_rvq_baseline():
    v = _variants("schedule")
    assert v["quadratic-16"].model.scales == [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75]
    assert v["quadratic-16"].model.tokens_per_second == 455
    assert v["linear-16"].model.num_scales == 16 and v["linear-16"].model.scales[-1] == 75
    assert v["linear-16"].model.tokens_per_second == 608
    rvq = v["rvq-8x75"].model
    assert rvq.scales == [75] * 8 and rvq.tokens_per_second == 600 and rvq.phi == "none"
    # same encoder/decoder: the schedules differ only by codebooks (one per scale) and phi convs
    d = rvq.latent_dim
    sats = {k: SAT(SATConfig.from_dict({**c.model.to_dict(), "codebook_size": 64})) for k, c in v.items()}
    assert _params(sats["quadratic-16"].encoder) == _params(sats["rvq-8x75"].encoder)
    assert _params(sats["quadratic-16"].decoder) == _params(sats["rvq-8x75"].decoder)
    assert len(sats["rvq-8x75"].quantizer.phi) == 0 and len(sats["quadratic-16"].quantizer.phi) == 6
    assert len(sats["quadratic-16"].quantizer.codebooks) == 16 and len(sats["rvq-8x75"].quantizer.codebooks) == 8
    phi_params = 6 * (d * d * 9 + d)
    assert _params(sats["quadratic-16"]) - _params(sats["rvq-8x75"]) == phi_params
    assert _params(sats["quadratic-16"]) == _params(sats["linear-16"])


def test_rvq_baseline_encodes_and_decodes_every_level_at_75_hz():
    torch.manual_seed(0)
    sat = SAT(SATConfig.from_dict({**TINY, "scales": [75] * 8, "phi": "none"})).train()
    wav = sine_mix(batch=2)
    sat(wav)  # k-means initialisation of every level on this batch
    sat.eval()
    codes = sat.encode(wav)
    assert [tuple(c.shape) for c in codes] == [(2, 75)] * 8  # 8 levels, each 75 tokens per 1 s
    assert sat.decode(codes).shape == (2, 1, 24_000)
    full = sat.latent_from_codes(codes)
    errors = [float((sat.latent_from_codes(codes[:k]) - full).pow(2).mean()) for k in (1, 4, 7)]
    assert errors[0] > errors[1] > errors[2] > 0, errors  # each residual level refines the same 75 frames
    assert all(len(torch.unique(c[0])) > 1 for c in codes)  # codes vary along the 75 frames at every level


@pytest.mark.parametrize("phi,count", [("none", 0), ("shared", 1), ("partial", 6), ("per_scale", 16)])
def test_phi_modes_change_the_number_of_phi_convs(phi, count):
    base = SAT(SATConfig.from_dict({**TINY, "phi": "none"}))
    sat = SAT(SATConfig.from_dict({**TINY, "phi": phi}))
    d = TINY["latent_dim"]
    assert len(sat.quantizer.phi) == count
    assert _params(sat) - _params(base) == count * (d * d * 9 + d)


def test_phi_kernel_changes_parameters():
    d = TINY["latent_dim"]
    k9 = SAT(SATConfig.from_dict(TINY))
    k3 = SAT(SATConfig.from_dict({**TINY, "phi_kernel": 3}))
    assert _params(k9) - _params(k3) == 6 * d * d * (9 - 3)
    v = _variants("phi")
    assert [v[n].model.num_phi for n in ("partial-6", "shared", "per-scale", "none")] == [6, 1, 16, 0]
    assert v["partial-6-k3"].model.phi_kernel == 3


@pytest.mark.parametrize(
    "waveform,names,subs",
    [
        ([], ["multi_scale_stft"], 5),
        (["multi_period"], ["multi_scale_stft", "multi_period"], 10),
        (["multi_scale_waveform"], ["multi_scale_stft", "multi_scale_waveform"], 8),
        (["multi_period", "multi_scale_waveform"], ["multi_scale_stft", "multi_period", "multi_scale_waveform"], 13),
    ],
)
def test_discriminator_switch_sets_the_discriminator_list(waveform, names, subs):
    cfg = DiscriminatorConfig(filters=2, waveform=waveform)
    disc = build_discriminator(cfg)
    assert discriminator_names(disc) == names
    logits, features = disc(sine_mix(batch=2, seconds=0.3))
    assert len(logits) == len(features) == subs
    assert all(lg.shape[0] == 2 for lg in logits)
    stft_only = _params(build_discriminator(DiscriminatorConfig(filters=2)))
    assert (_params(disc) > stft_only) == bool(waveform)


def test_default_discriminator_keeps_the_released_layout():
    disc = build_discriminator(DiscriminatorConfig())
    assert "discriminators.0.convs.1.conv.weight_g" in disc.state_dict()


def test_unknown_waveform_discriminator_is_named():
    with pytest.raises(ValueError, match="bogus"):
        DiscriminatorConfig(waveform=["bogus"])


@pytest.mark.parametrize("window,length", [(0.48, 36), (1.0, 75), (2.0, 150)])
def test_window_sets_latent_length_and_last_scale(window, length):
    v = {c.model.window_seconds: c.model for c in _variants("window").values()}
    model = v[window]
    assert model.latent_length == length and model.scales[-1] == length and model.num_scales == 16
    assert model.window_samples == round(24_000 * window)
    sat = SAT(SATConfig.from_dict({**TINY, "window_seconds": window, "scales": model.scales}))
    wav = sine_mix(batch=1, seconds=window)
    codes = sat.eval().encode(wav)  # shapes only: the codebooks are not initialised
    assert codes[-1].shape == (1, length)
    assert sat.decode(codes).shape == (1, 1, model.window_samples)


def test_half_second_window_is_rejected_with_the_reason():
    with pytest.raises(ValueError, match="whole number of latent frames"):
        SATConfig.from_dict({**TINY, "window_seconds": 0.5})


def test_variant_errors_name_the_problem():
    base, _ = read_config("tiny", "tokenizer")
    with pytest.raises(ValueError, match="cubic"):
        variant_config(base, {"model": {"scales": "cubic"}})
    with pytest.raises(ValueError, match="distinct 'name'"):
        ExperimentSpec.from_dict("x", {"kind": "tokenizer", "variants": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValueError, match="kind"):
        ExperimentSpec.from_dict("x", {"kind": "nonsense"})


def test_aar_switches_cosine_attention(tiny_sat):
    from aar.transformer import AAR
    from aar.transformer.config import AARConfig

    cfg = dict(depth=1, width=32, num_heads=2, condition="label", class_names=["a", "b"])
    try:
        on, off = AARConfig.from_dict({**cfg, "cos_attn": True}), AARConfig.from_dict({**cfg, "cos_attn": False})
    except (TypeError, ValueError) as exc:
        pytest.fail(f"AARConfig fields changed: {exc}")
    # cosine attention adds one learned logit scale per head and block
    assert _params(AAR(on, tiny_sat)) - _params(AAR(off, tiny_sat)) == 2
