"""Settings of the end-to-end demo: its time budget, model sizes and evaluation sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MINUTES = 15.0

def demo_tokenizer_config(device: str = "auto"):
    """The ``tiny`` SAT recipe with batches of 2 (more, cheaper steps in a short run), trained on
    its reconstruction losses alone (``adversarial_start: null``: a step without the
    discriminator costs about a quarter of one with it, and in a run of minutes the extra steps
    matter more; measured in docs/demo.md), validated on held-out clips, checkpointing lightly."""
    from aar.train.tokenizer import TokenizerTrainConfig

    config = TokenizerTrainConfig.load("tiny")
    config.adversarial_start = None
    config.data.batch_size = 2
    config.data.val_clips = 12
    config.train.device = device
    config.train.log_every = 10
    config.train.keep_checkpoints = 2
    return config


def demo_aar_config(device: str = "auto"):
    """A small label-conditioned AAR (depth 4, width 128, 4 heads, 1.5 M parameters) with a
    learning rate for a short run (1e-3 after 20 warm-up steps, cosine to 1e-4), batches of 4
    (a step costs half of one of 8, and in the same minutes twice the updates made generated
    environmental sounds recognisable: docs/demo.md), validated on 64 windows (8 clips with
    all their views). The model kept is the last one: trained on one view per clip its held-out
    loss rose after about 400 steps, on 8 views it keeps falling (docs/demo.md)."""
    from aar.train.engine import TrainConfig
    from aar.train.optim import OptimConfig
    from aar.transformer.config import AARConfig
    from aar.transformer.training import AARTrainConfig, CacheDataConfig, SampleConfig

    return AARTrainConfig(
        arch="next-scale",
        model=AARConfig(depth=4, width=128, num_heads=4, cond_drop_rate=0.1),
        data=CacheDataConfig(batch_size=4, val_fraction=0.05, val_windows=64),
        optim=OptimConfig(name="adamw", lr=1e-3, betas=[0.9, 0.95], weight_decay=0.05, warmup_steps=20,
                          min_lr_ratio=0.1, clip_grad=2.0),
        train=TrainConfig(max_steps=1, device=device, log_every=10, keep_checkpoints=2),
        sample=SampleConfig(clips=0),
    )


@dataclass
class DemoSettings:
    """Everything one demo run depends on.

    ``minutes`` is the budget of the whole run; the two training stages are sized to what is
    left of it. ``tokenizer_steps`` / ``aar_steps`` fix the step counts instead (tests, repeatable
    runs). ``calibration_steps`` steps are timed before a budgeted run is sized.
    """

    out: Path
    corpus: Path
    minutes: float = DEFAULT_MINUTES
    device: str = "auto"
    tokenizer_steps: int | None = None
    aar_steps: int | None = None
    calibration_steps: int = 10
    # 128 per class: with the 24 of the first runs, a model whose environment set was nearest
    # held-out environment when 192 were drawn came out nearest music in up to a quarter of the
    # random 24-clip subsets (docs/demo.md); 128 also gives the 128-dimensional embedding a
    # covariance of (nearly) full rank
    generated_per_class: int = 128
    generation_batch: int = 32
    shown_per_class: int = 3  # originals / reconstructions / generations shown in the report
    cfg: float = 3.0  # 3, not 2: environment stood further from music in every model tried (docs/demo.md)
    cfg_schedule: str = "constant"  # guidance at every scale, not ramped from 0 (docs/demo.md)
    top_k: int = 0  # no truncation: it narrows the spread of the generated clips (docs/demo.md)
    top_p: float = 0.0
    seed: int = 0
    token_views: int = 8  # versions of every training clip in the token cache (augmented_view)
    speed_batches: tuple[int, ...] = (1, 8)
    speed_repeats: int = 2
    tokenizer: object = None  # TokenizerTrainConfig; None -> demo_tokenizer_config(device)
    aar: object = None  # AARTrainConfig; None -> demo_aar_config(device)

    def __post_init__(self):
        self.out, self.corpus = Path(self.out), Path(self.corpus)
        if self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        for name in ("tokenizer_steps", "aar_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.token_views < 1:
            raise ValueError(f"token_views must be >= 1, got {self.token_views}")
        from aar.transformer.sampling import check_guidance_schedule

        check_guidance_schedule(self.cfg_schedule)
        if self.generation_batch < 1:
            raise ValueError(f"generation_batch must be >= 1, got {self.generation_batch}")
        if self.generated_per_class < 2:
            raise ValueError(f"generated_per_class must be >= 2 (FAD needs a covariance), got {self.generated_per_class}")
        if self.tokenizer is None:
            self.tokenizer = demo_tokenizer_config(self.device)
        if self.aar is None:
            self.aar = demo_aar_config(self.device)

    def describe(self) -> dict:
        """The settings as JSON-ready values (recorded in ``demo.json``)."""
        return {
            "out": str(self.out), "corpus": str(self.corpus), "minutes": self.minutes, "device": self.device,
            "tokenizer_steps": self.tokenizer_steps, "aar_steps": self.aar_steps,
            "calibration_steps": self.calibration_steps, "generated_per_class": self.generated_per_class,
            "generation_batch": self.generation_batch,
            "cfg": self.cfg, "cfg_schedule": self.cfg_schedule, "token_views": self.token_views, "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed,
            "speed_batches": list(self.speed_batches), "speed_repeats": self.speed_repeats,
            "tokenizer": self.tokenizer.to_dict(), "aar": self.aar.to_dict(),
        }
