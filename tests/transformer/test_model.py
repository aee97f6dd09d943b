"""Behaviour of the AAR model: block-causal mask, KV-cache generation, seeding, conditions,
persistence."""

import pytest
import torch

from aar import SAT, SATConfig
from aar.checkpoint import CheckpointError
from aar.transformer import AAR, AARConfig


def random_tokenizer():
    """The tiny SAT with random codebooks (an untrained one has all-zero codebooks)."""
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset("tiny")).eval()
    with torch.no_grad():
        for book in sat.quantizer.codebooks:
            book.embed.normal_()
    return sat


def small_config(**overrides):
    return AARConfig(**{"depth": 2, "width": 64, "num_heads": 2, "drop_path_rate": 0.0, **overrides})


def make_model(sat, **overrides):
    torch.manual_seed(0)
    model = AAR(small_config(**overrides), sat)
    with torch.no_grad():  # random weights of a trained-like size, so every branch matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def sat():
    return random_tokenizer()


@pytest.fixture(scope="module")
def model(sat):
    return make_model(sat)


def random_codes(model, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, model.config.vocab_size, (batch, s), generator=g) for s in model.scales]


def test_config_resolved_from_tokenizer(model, sat):
    assert model.config.scales == sat.scales
    assert model.config.latent_dim == sat.config.latent_dim
    assert model.config.vocab_size == sat.config.codebook_size
    assert not any(n.startswith("tokenizer") for n in model.state_dict())


def test_presets_follow_the_paper():
    cfg = AARConfig.preset("d16")
    assert (cfg.width, cfg.num_heads, cfg.mlp_ratio) == (1024, 16, 4.0)
    assert cfg.drop_path_rate == pytest.approx(0.1 * 16 / 24)
    assert AARConfig.preset("d4").width == 256
    with pytest.raises(ValueError, match="unknown AAR preset"):
        AARConfig.preset("d3")


@pytest.mark.parametrize("changed", [0, 3, 9, 14])
def test_block_causal_mask(model, changed):
    """Changing the codes of scale k+1 (0-based index ``changed``) never changes the logits of
    scales <= k+1's predecessors, and does change a later scale."""
    cond = torch.randn(2, 512)
    codes = random_codes(model)
    other = [c.clone() for c in codes]
    other[changed] = (other[changed] + 1) % model.config.vocab_size
    with torch.inference_mode():
        a, b = model(cond, codes), model(cond, other)
    begin, end = model.scale_ranges()[changed]
    # positions up to and including scale `changed` predict scales <= changed from scales < changed
    assert torch.allclose(a[:, :end], b[:, :end], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, end:], b[:, end:], atol=1e-4)


@pytest.mark.parametrize("cfg", [0.0, 3.0])
def test_kv_cache_generation_equals_full_recomputation(model, cfg):
    cond = torch.randn(2, 512)
    out = model.generate(cond, cfg=cfg, top_k=1)
    with torch.inference_mode():
        c, u = model(cond, out.codes), model(None, out.codes)
    k = len(model.scales)
    ramp = torch.cat([torch.full((s,), cfg * i / (k - 1)) for i, s in enumerate(model.scales)])[None, :, None]
    guided = (1 + ramp) * c - ramp * u
    assert torch.equal(guided.argmax(-1), torch.cat(out.codes, 1))


def test_same_seed_same_audio_different_seed_differs(model):
    cond = torch.randn(2, 512)
    a = model.generate(cond, seed=11)
    b = model.generate(cond, seed=11)
    c = model.generate(cond, seed=12)
    assert all(torch.equal(x, y) for x, y in zip(a.codes, b.codes))
    assert torch.equal(a.audio, b.audio)
    assert not torch.equal(torch.cat(a.codes, 1), torch.cat(c.codes, 1))
    assert not torch.equal(a.audio, c.audio)
    assert a.audio.shape == (2, 1, 24000) and a.sample_rate == 24000


def test_num_samples_and_unconditional(model):
    out = model.generate(torch.randn(2, 512), num_samples=3, seed=0)
    assert [c.shape for c in out.codes[:3]] == [(6, 1), (6, 2), (6, 4)]
    assert out.audio.shape == (6, 1, 24000)
    free = model.generate(None, num_samples=2, seed=0)
    assert free.audio.shape == (2, 1, 24000)
    with pytest.raises(ValueError, match=r"\[B x 512\]"):
        model.generate(torch.randn(2, 64))


def test_eval_never_drops_condition_training_does(sat):
    model = make_model(sat, cond_drop_rate=0.5)
    cond, codes = torch.randn(16, 512), random_codes(model, 16)
    with torch.no_grad():
        null = model(None, codes)
        cond_logits = model(cond, codes)
        model.train()
        torch.manual_seed(1)
        train_logits = model(cond, codes)
        model.eval()
        again = model(cond, codes)
    dropped = [(train_logits[i] - null[i]).abs().max() < 1e-5 for i in range(16)]
    assert 0 < sum(dropped) < 16
    kept = [(train_logits[i] - cond_logits[i]).abs().max() < 1e-5 for i in range(16)]
    assert all(d != k for d, k in zip(dropped, kept))
    assert torch.equal(again, cond_logits)
    assert all((cond_logits[i] - null[i]).abs().max() > 1e-4 for i in range(16))


def test_label_condition(sat):
    model = make_model(sat, condition="label", class_names=["dog", "cat", "rain"])
    codes = random_codes(model, 3)
    with torch.inference_mode():
        logits = model(torch.tensor([0, 1, 2]), codes)
        assert not torch.allclose(logits[0], model(torch.tensor([1]), [c[:1] for c in codes])[0])
    out = model.generate(torch.tensor([2]), num_samples=2, seed=0)
    assert out.audio.shape == (2, 1, 24000)
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
        model.generate(torch.tensor([3]))
    with pytest.raises(ValueError, match="needs class_names"):
        small_config(condition="label")


def test_unconditional_model(sat):
    model = make_model(sat, condition="none")
    with pytest.raises(ValueError, match="unconditional"):
        model.generate(torch.randn(1, 512))
    assert model.generate(None, num_samples=1, seed=0).audio.shape == (1, 1, 24000)


def test_save_and_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer" / "config.json").is_file()
    loaded = AAR.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and not loaded.training
    cond, codes = torch.randn(2, 512), random_codes(model)
    with torch.inference_mode():
        assert torch.equal(loaded(cond, codes), model(cond, codes))
    assert torch.equal(loaded.uncond_embedding, model.uncond_embedding)


def test_loading_the_wrong_kind_fails(sat, tmp_path):
    sat.save_pretrained(tmp_path / "sat")
    with pytest.raises(CheckpointError, match="holds a sat model, expected a aar model"):
        AAR.from_pretrained(tmp_path / "sat")
    with pytest.raises(CheckpointError, match="no such file"):
        AAR.from_pretrained(tmp_path / "nothing")


def test_mismatched_tokenizer_rejected(sat):
    with pytest.raises(ValueError, match="latent_dim 8 does not match"):
        AAR(small_config(latent_dim=8), sat)
