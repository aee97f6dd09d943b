"""AAR training on a token cache through the project's training engine."""

import pytest
import torch

from aar.transformer import AAR
from aar.transformer.token_cache import TokenCache
from aar.transformer.training import AARTrainConfig, train_aar


def tiny_config(**train):
    return AARTrainConfig.from_dict({
        "model": {"depth": 2, "width": 64, "num_heads": 2, "cond_drop_rate": 0.0, "drop_path_rate": 0.0},
        "data": {"batch_size": 4, "val_fraction": 0.0},
        "optim": {"lr": 3e-3, "warmup_steps": 5, "weight_decay": 0.0, "min_lr_ratio": 1.0},
        "train": {"max_steps": 80, "log_every": 0, "val_every": 0, "checkpoint_every": 0, "device": "cpu", **train},
        "sample": {"clips": 0},
    })


def test_presets_carry_the_release_optimiser():
    for name in ("d4", "d8", "d16"):
        cfg = AARTrainConfig.load(name)
        assert cfg.model.depth == int(name[1:]) and cfg.model.width == 64 * cfg.model.depth
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.clip_grad) == ("adamw", 1e-4, 0.05, 2.0)
        assert cfg.optim.betas == [0.9, 0.95] and cfg.model.cond_drop_rate == 0.1
    with pytest.raises(ValueError, match="unknown config section"):
        AARTrainConfig.from_dict({"modle": {}})


def test_overfits_then_generates_the_clips_back(label_cache, tmp_path):
    result = train_aar(tiny_config(), label_cache, tmp_path / "run")
    losses = result.summary
    assert (tmp_path / "run" / "model" / "tokenizer" / "config.json").is_file()
    model = AAR.from_pretrained(tmp_path / "run" / "model")
    cache = TokenCache(label_cache)
    batch = cache.batch(range(4))
    with torch.inference_mode():
        logits = model(batch["cond"], batch["codes"])
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["codes"])
    assert loss < 0.05, f"did not overfit: loss {loss:.3f} ({losses})"
    out = model.generate(batch["cond"], cfg=0.0, top_k=1)
    assert torch.equal(torch.cat(out.codes, 1), batch["codes"])
    assert torch.allclose(out.audio, model.tokenizer.decode(out.codes))


def test_resume_is_exact(label_cache, tmp_path):
    straight = train_aar(tiny_config(max_steps=6), label_cache, tmp_path / "a").model
    train_aar(tiny_config(max_steps=3), label_cache, tmp_path / "b")
    resumed = train_aar(tiny_config(max_steps=6), label_cache, tmp_path / "b", resume=True).model
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    with pytest.raises(Exception, match="already holds checkpoints"):
        train_aar(tiny_config(max_steps=6), label_cache, tmp_path / "b")


def test_validation_reports_accuracy_per_scale(label_cache, tmp_path):
    cfg = tiny_config(max_steps=2, val_every=2)
    cfg.data.val_fraction = 0.25
    cfg.sample.clips = 1
    summary = train_aar(cfg, label_cache, tmp_path / "run").summary
    last = summary["validation"][-1]
    assert last["step"] == 2 and 0.0 <= last["accuracy"] <= 1.0 and last["loss"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"audio": 0}).Reload()
    tags = events.Tags()
    assert {f"val_scale/accuracy_{k:02d}" for k in range(16)} <= set(tags["scalars"])
    assert {f"val_scale/loss_{k:02d}" for k in range(16)} <= set(tags["scalars"])
    assert [s.step for s in events.Scalars("val_scale/accuracy_00")] == [0, 2]
    assert "audio/0_generated" in tags["audio"] and "audio/0_held_out" in tags["audio"]
