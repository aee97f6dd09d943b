"""``adversarial_start``: a reconstruction-only warm-up before the discriminator joins."""

from __future__ import annotations

import pytest
import torch

from aar.train import TokenizerTrainConfig
from aar.train.distributed import init_distributed
from aar.train.engine import Schedule
from aar.train.tokenizer import SATTask
from tests.conftest import sine_mix
from tests.train.conftest import small_config


def _task(adversarial_start: int) -> SATTask:
    cfg = small_config()
    cfg.adversarial_start = adversarial_start
    cfg.disc_skip_every = 0  # the discriminator would learn on every adversarial step
    task = SATTask(cfg, validation=None)
    task.build(init_distributed("cpu", "fp32"), Schedule(total_steps=10, steps_per_epoch=None, global_batch=2))
    return task


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_before_the_start_only_the_generator_learns():
    torch.manual_seed(0)
    task = _task(adversarial_start=2)
    wav = sine_mix(batch=2)
    disc, gen = _params(task.disc), _params(task.sat)
    for step in (0, 1):
        stats = task.train_step([wav], step)
        assert "adv" not in stats and "feat" not in stats and "disc_loss" not in stats, stats
        assert {"time", "freq", "commit", "loss", "lr"} <= set(stats)
    assert all(torch.equal(a, b) for a, b in zip(disc, _params(task.disc))), "the discriminator changed before its start"
    assert any(not torch.equal(a, b) for a, b in zip(gen, _params(task.sat))), "the generator did not learn"
    stats = task.train_step([wav], 2)
    assert {"adv", "feat", "disc_loss"} <= set(stats), stats
    assert any(not torch.equal(a, b) for a, b in zip(disc, _params(task.disc))), "the discriminator did not learn from its start"


def test_null_start_never_runs_the_discriminator():
    cfg = TokenizerTrainConfig.from_dict({"adversarial_start": None})
    assert cfg.adversarial_start is None and cfg.to_dict()["adversarial_start"] is None
    task = _task(adversarial_start=None)
    stats = task.train_step([sine_mix(batch=2)], 10**6)
    assert "adv" not in stats and "disc_loss" not in stats, stats


def test_default_is_adversarial_from_the_first_step():
    assert TokenizerTrainConfig().adversarial_start == 0
    task = _task(adversarial_start=0)
    assert task.adversarial(0) and task.updates_discriminator(0)


@pytest.mark.parametrize("key", ["adversarial_start", "disc_skip_every"])
def test_negative_values_are_rejected_by_name(key):
    with pytest.raises(ValueError, match=key):
        TokenizerTrainConfig.from_dict({key: -1})
