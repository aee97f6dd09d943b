"""``keep_best``: the exported model is the one of the lowest validation metric."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from aar.train.distributed import init_distributed
from aar.train.engine import TrainConfig, Trainer, TrainTask

# validation loss after steps 0, 2, 4, 6, 8: lowest at step 4, then rising (overfitting)
SCRIPTED_LOSS = {0: 5.0, 2: 3.0, 4: 2.0, 6: 2.5, 8: 4.0}


class CountingTask(TrainTask):
    """A one-parameter task whose validation loss follows ``SCRIPTED_LOSS`` and whose export
    records the step it was taken at."""

    def build(self, ctx, schedule):
        self.weight = torch.zeros(())
        self.step = 0

    def train_step(self, batches, step):
        self.weight += 1.0
        self.step = step + 1
        return {"loss": float(self.weight)}

    def validate(self, step, monitor):
        return {"loss": SCRIPTED_LOSS[step]}

    def state_dict(self):
        return {"weight": self.weight.clone(), "step": self.step}

    def load_state_dict(self, state):
        self.weight, self.step = state["weight"].clone(), state["step"]

    def export(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.json").write_text(json.dumps({"step": self.step, "weight": float(self.weight)}))
        return directory


class Batches:
    def __iter__(self):
        while True:
            yield torch.zeros(1)

    def state_dict(self):
        return {}

    def load_state_dict(self, state, exact=True):
        pass


def run(tmp_path: Path, keep_best: str | None) -> dict:
    cfg = TrainConfig(max_steps=8, val_every=2, checkpoint_every=0, log_every=0, device="cpu", keep_best=keep_best)
    ctx = init_distributed("cpu", "fp32")
    try:
        return Trainer(CountingTask(), Batches(), cfg, ctx, tmp_path / "run").run()
    finally:
        ctx.close()


def test_model_is_the_best_validated_and_the_last_is_kept_beside_it(tmp_path):
    summary = run(tmp_path, keep_best="loss")
    model = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    last = json.loads((tmp_path / "run" / "model_last" / "model.json").read_text())
    assert model == {"step": 4, "weight": 4.0}
    assert last == {"step": 8, "weight": 8.0}
    assert summary["best_validation"] == {"step": 4, "loss": 2.0}
    assert summary["export"].endswith("model") and summary["export_last"].endswith("model_last")


def test_without_keep_best_the_model_is_the_last(tmp_path):
    summary = run(tmp_path, keep_best=None)
    assert json.loads((tmp_path / "run" / "model" / "model.json").read_text())["step"] == 8
    assert "best_validation" not in summary and not (tmp_path / "run" / "model_last").exists()
