"""Augmented views in the token cache, and the constant guidance schedule."""

import numpy as np
import pytest
import torch

from aar import SAT
from aar.audio import load_audio
from aar.data import open_source
from aar.transformer import AAR, AARConfig, NextTokenAR, guidance_ramp
from aar.transformer import next_scale, next_token
from aar.transformer.token_cache import MAX_VIEW_DELAY_SECONDS, TokenCache, augmented_view, build_token_cache, split_cache
from aar.transformer.training import SampleConfig


# ---------------------------------------------------------------------- views
def test_views_are_the_clip_inverted_and_delayed():
    wav = torch.randn(1, 24_000)
    assert augmented_view(wav, 0, "a.wav", 24_000) is wav
    assert torch.equal(augmented_view(wav, 1, "a.wav", 24_000), -wav)
    for view in (2, 3, 4, 5):
        out = augmented_view(wav, view, "a.wav", 24_000)
        assert out.shape == wav.shape
        delay = int(torch.nonzero(out[0]).min())
        assert 1 <= delay <= MAX_VIEW_DELAY_SECONDS * 24_000
        sign = -1 if view % 2 else 1
        assert torch.equal(out[0, delay:], sign * wav[0, : 24_000 - delay])
        assert torch.equal(out, augmented_view(wav, view, "a.wav", 24_000))  # seeded by name and view
    delays = {int(torch.nonzero(augmented_view(wav, 2, f"{k}.wav", 24_000)[0]).min()) for k in range(8)}
    assert len(delays) > 1  # clips get different delays


def test_cache_with_views(tmp_path, sat_dir, labelled_audio, label_cache):
    sat = SAT.from_pretrained(sat_dir)
    meta = build_token_cache(sat, open_source(labelled_audio), tmp_path / "c", condition="label", views=3)
    assert meta["views"] == 3 and meta["num_clips"] == 4 and meta["num_windows"] == 12
    cache, plain = TokenCache(tmp_path / "c"), TokenCache(label_cache)
    assert cache.names[:3] == ["cls0/clip0.wav#0", "cls0/clip0.wav#0~1", "cls0/clip0.wav#0~2"]
    assert {cache.clip_name(i) for i in range(3)} == {"cls0/clip0.wav"}
    assert cache.batch(np.arange(12))["cond"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    wav = load_audio(labelled_audio / "cls1" / "clip1.wav")[None]
    assert torch.equal(cache[3]["codes"], plain[1]["codes"])  # view 0 is the clip as it is
    assert torch.equal(cache[4]["codes"], torch.cat(sat.encode(-wav), 1)[0])
    delayed = augmented_view(wav[0], 2, "cls1/clip1.wav", sat.sample_rate)
    assert torch.equal(cache[5]["codes"], torch.cat(sat.encode(delayed[None]), 1)[0])
    train, val = split_cache(cache, 0.25, 100, seed=0)
    held = {cache.clip_name(i) for i in val}
    assert len(val) == 3 * len(held) and not held & {cache.clip_name(i) for i in train}


def test_views_must_be_positive(tmp_path, sat_dir, labelled_audio):
    with pytest.raises(ValueError, match="views must be >= 1, got 0"):
        build_token_cache(SAT.from_pretrained(sat_dir), open_source(labelled_audio), tmp_path / "c", views=0)


# ---------------------------------------------------------------------- guidance schedule
def test_guidance_schedules():
    assert [guidance_ramp(4.0, k, 5) for k in range(5)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [guidance_ramp(4.0, k, 5, "constant") for k in range(5)] == [4.0] * 5
    with pytest.raises(ValueError, match="'cosine'"):
        guidance_ramp(4.0, 1, 5, "cosine")
    with pytest.raises(ValueError, match="cfg_schedule"):
        SampleConfig(cfg_schedule="cosine")


def _labelled(cls, sat):
    config = AARConfig(depth=1, width=32, num_heads=2, condition="label", class_names=["a", "b", "c"])
    torch.manual_seed(0)
    return cls(config, sat).eval()


@pytest.mark.parametrize("cls, module", [(AAR, next_scale), (NextTokenAR, next_token)])
def test_generate_applies_the_schedule(cls, module, sat_dir, monkeypatch):
    model = _labelled(cls, SAT.from_pretrained(sat_dir))
    seen = []
    real = module.guided_logits

    def spy(cond_logits, uncond_logits, strength):
        seen.append(strength)
        return real(cond_logits, uncond_logits, strength)

    monkeypatch.setattr(module, "guided_logits", spy)
    K = len(model.config.scales)
    model.generate(torch.tensor([1]), cfg=3.0, seed=0)
    linear = sorted(set(seen))
    assert linear[0] == 0.0 and linear[-1] == 3.0 and len(linear) == K
    seen.clear()
    constant = model.generate(torch.tensor([1]), cfg=3.0, seed=0, cfg_schedule="constant")
    assert set(seen) == {3.0}
    again = model.generate(torch.tensor([1]), cfg=3.0, seed=0, cfg_schedule="constant")
    assert all(torch.equal(a, b) for a, b in zip(constant.codes, again.codes))
    with pytest.raises(ValueError, match="cfg_schedule must be one of linear, constant; got 'ramp'"):
        model.generate(torch.tensor([1]), cfg=3.0, cfg_schedule="ramp")
