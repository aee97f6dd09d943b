"""The next-token baseline: causal mask, KV-cache generation against full recomputation, the
same size as the AAR, persistence, training with the shared trainer and the CLI."""

import json

import pytest
import torch

from aar.checkpoint import CheckpointError
from aar.cli.main import main
from aar.transformer import AAR, AARConfig, NextTokenAR, load_transformer
from aar.transformer.token_cache import TokenCache
from aar.transformer.training import AARTrainConfig, train_aar
from tests.transformer.conftest import random_codebook_sat


def small_config(**overrides):
    return AARConfig(**{"depth": 2, "width": 64, "num_heads": 2, "drop_path_rate": 0.0, **overrides})


@pytest.fixture(scope="module")
def sat():
    return random_codebook_sat()


@pytest.fixture(scope="module")
def model(sat):
    torch.manual_seed(0)
    model = NextTokenAR(small_config(), sat)
    with torch.no_grad():  # weights of a trained-like size, so every branch matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def random_flat_codes(model, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, model.seq_len), generator=g)


def test_same_parameters_as_the_next_scale_model(model, sat):
    aar = AAR(small_config(), sat)
    ours = {n: p.shape for n, p in model.named_parameters()}
    assert ours == {n: p.shape for n, p in aar.named_parameters()}
    assert model.num_steps == 455 and model.kind != aar.kind


@pytest.mark.parametrize("changed", [0, 1, 200, 453])
def test_training_mask_is_causal(model, changed):
    """Changing token ``changed`` leaves the logits of positions <= changed (which predict tokens
    <= changed from tokens before them) untouched and changes every later position's."""
    cond = torch.randn(2, 512)
    codes = random_flat_codes(model)
    other = codes.clone()
    other[:, changed] = (other[:, changed] + 1) % model.config.vocab_size
    with torch.inference_mode():
        a, b = model(cond, codes), model(cond, other)
    assert a.shape == (2, 455, model.config.vocab_size)
    assert torch.allclose(a[:, : changed + 1], b[:, : changed + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, changed + 1 :], b[:, changed + 1 :], atol=1e-4)
    assert (a[:, changed + 1 :] - b[:, changed + 1 :]).abs().amax(-1).min() > 0  # every later position


def test_attention_mask_is_lower_triangular(model):
    mask = model.attn_mask
    assert mask.shape == (455, 455) and torch.equal(mask, torch.ones_like(mask).tril())


@pytest.mark.parametrize("cfg", [0.0, 3.0])
def test_kv_cache_generation_equals_full_recomputation(model, cfg):
    """Greedy decoding one token at a time with the cache picks, at every position, the argmax
    of the guided logits that a full teacher-forced pass over the generated tokens computes."""
    cond = torch.randn(2, 512)
    out = model.generate(cond, cfg=cfg, top_k=1)
    codes = torch.cat(out.codes, 1)
    with torch.inference_mode():
        c, u = model(cond, codes), model(None, codes)
    k = model.num_scales
    ramp = torch.cat([torch.full((s,), cfg * i / (k - 1)) for i, s in enumerate(model.scales)])[None, :, None]
    guided = (1 + ramp) * c - ramp * u
    assert torch.equal(guided.argmax(-1), codes)
    assert torch.allclose(out.audio, model.tokenizer.decode(out.codes))
    assert [c.shape[1] for c in out.codes] == model.scales


def test_sampling_is_seeded_and_interface_matches_aar(model):
    cond = torch.randn(1, 512)
    a, b = model.generate(cond, seed=3, num_samples=2), model.generate(cond, seed=3, num_samples=2)
    c = model.generate(cond, seed=4, num_samples=2)
    assert torch.equal(torch.cat(a.codes, 1), torch.cat(b.codes, 1)) and torch.equal(a.audio, b.audio)
    assert not torch.equal(torch.cat(a.codes, 1), torch.cat(c.codes, 1))
    assert a.audio.shape == (2, 1, 24000) and a.sample_rate == 24000
    free = model.generate(None, num_samples=2, seed=0)
    assert free.audio.shape == (2, 1, 24000)


def test_save_load_and_load_transformer_picks_the_class(model, sat, tmp_path):
    model.save_pretrained(tmp_path / "nt")
    loaded = load_transformer(tmp_path / "nt")
    assert type(loaded) is NextTokenAR and not loaded.training
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name
    AAR(small_config(), sat).save_pretrained(tmp_path / "ns")
    assert type(load_transformer(tmp_path / "ns")) is AAR
    with pytest.raises(CheckpointError, match="expected a aar model"):
        AAR.from_pretrained(tmp_path / "nt")
    with pytest.raises(CheckpointError, match="holds a sat model, expected a aar model"):
        load_transformer(tmp_path / "nt" / "tokenizer")
    with pytest.raises(CheckpointError, match="not a model folder"):
        NextTokenAR.from_pretrained(tmp_path / "nt" / "model.safetensors")


def test_trains_with_the_shared_trainer_then_generates_the_clips_back(label_cache, tmp_path):
    cfg = AARTrainConfig.from_dict({
        "arch": "next-token",
        "model": {"depth": 2, "width": 64, "num_heads": 2, "cond_drop_rate": 0.0, "drop_path_rate": 0.0},
        "data": {"batch_size": 4, "val_fraction": 0.0},
        "optim": {"lr": 3e-3, "warmup_steps": 5, "weight_decay": 0.0},
        "train": {"max_steps": 120, "log_every": 0, "val_every": 0, "checkpoint_every": 0, "device": "cpu"},
        "sample": {"clips": 0},
    })
    result = train_aar(cfg, label_cache, tmp_path / "run")
    assert type(result.model) is NextTokenAR
    model = load_transformer(tmp_path / "run" / "model")
    batch = TokenCache(label_cache).batch(range(4))
    with torch.inference_mode():
        loss = torch.nn.functional.cross_entropy(model(batch["cond"], batch["codes"]).transpose(1, 2), batch["codes"])
    assert loss < 0.05, f"did not overfit: loss {loss:.3f}"
    out = model.generate(batch["cond"], cfg=0.0, top_k=1)
    assert torch.equal(torch.cat(out.codes, 1), batch["codes"])


def test_arch_is_validated():
    with pytest.raises(ValueError, match="unknown arch 'next-frame'"):
        AARTrainConfig.from_dict({"arch": "next-frame"})


def test_cli_trains_and_generates_a_next_token_model(capsys, tmp_path, label_cache):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {depth: 1, width: 32, num_heads: 2}\ndata: {batch_size: 2, val_fraction: 0.0}\n"
                   "train: {max_steps: 2, val_every: 0, device: cpu}\nsample: {clips: 0}\n")
    code = main(["train-aar", "--config", str(cfg), "--cache", str(label_cache), "--out", str(tmp_path / "run"),
                 "--arch", "next-token"])
    assert code == 0, capsys.readouterr().err
    assert type(load_transformer(tmp_path / "run" / "model")) is NextTokenAR
    code = main(["generate", "--model", str(tmp_path / "run" / "model"), "--label", "cls2", "--seed", "1",
                 "-o", str(tmp_path / "gen")])
    assert code == 0, capsys.readouterr().err
    settings = json.loads((tmp_path / "gen" / "generation.json").read_text())
    assert [f["file"] for f in settings["files"]] == ["00-cls2-00.wav"]
