"""AAR training on a token cache: the :class:`~aar.train.engine.TrainTask` of the transformer and
:func:`train_aar`, the entry point of ``aar train-aar``.

One step: teacher-forced logits for a batch of cached codes, cross-entropy over every position
of every scale (condition dropout inside the model), AdamW (lr 1e-4, betas 0.9/0.95, weight
decay 0.05 on matrices) with warm-up and cosine decay, clipping at 2, bf16 autocast on CUDA.
Validation: loss and accuracy on held-out clips (overall; per scale in TensorBoard under
``val_scale/``), plus generated audio in TensorBoard.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from aar.checkpoint import atomic_write_text
from aar.train.config import build_section, read_config
from aar.train.distributed import DistContext, init_distributed, no_sync, unwrap
from aar.train.engine import Schedule, TrainConfig, Trainer, TrainTask, run_lock
from aar.train.monitor import Monitor
from aar.train.optim import OptimConfig, Optimization
from aar.transformer.config import AAR_PRESETS, AARConfig
from aar.transformer.next_scale import AAR
from aar.transformer.registry import ARCHITECTURES
from aar.transformer.token_cache import StreamingTokenLoader, TokenCache, held_out_windows

log = logging.getLogger("aar.train")

RUN_CONFIG = "train_config.yaml"


@dataclass
class CacheDataConfig:
    """Batches from a token cache (``batch_size`` per process), the held-out clips, and the
    shards read at a time by the streaming loader (``block_shards``: the windows of that many
    shards are shuffled together; memory holds one block)."""

    batch_size: int = 8
    val_fraction: float = 0.01
    val_windows: int = 256
    block_shards: int = 8

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.block_shards < 1:
            raise ValueError(f"data.block_shards must be >= 1, got {self.block_shards}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class SampleConfig:
    """Audio generated at each validation for TensorBoard (from held-out conditions)."""

    clips: int = 2
    cfg: float = 4.0
    top_k: int = 200
    top_p: float = 0.95
    seed: int = 0
    cfg_schedule: str = "linear"  # or "constant" (aar.transformer.sampling.guidance_ramp)

    def __post_init__(self):
        from aar.transformer.sampling import check_guidance_schedule

        check_guidance_schedule(self.cfg_schedule, "sample.cfg_schedule")


@dataclass
class AARTrainConfig:
    """A training run. YAML sections: ``arch`` (``next-scale``, the AAR, or ``next-token``, the
    baseline of the same size), ``model`` (an AAR preset name, or AARConfig fields with an
    optional ``preset:``; condition, cond_dim, class names and tokenizer sizes come from the
    token cache), ``data``, ``optim``, ``train``, ``sample``."""

    model: AARConfig = field(default_factory=lambda: AARConfig.preset("d16"))
    data: CacheDataConfig = field(default_factory=CacheDataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(name="adamw", lr=1e-4, betas=[0.9, 0.95], weight_decay=0.05, clip_grad=2.0)
    )
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=1000))
    sample: SampleConfig = field(default_factory=SampleConfig)
    arch: str = "next-scale"

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose from {', '.join(ARCHITECTURES)}")

    @classmethod
    def from_dict(cls, data: dict) -> "AARTrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config section(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        default = cls()
        optim = {**dataclasses.asdict(default.optim), **(data.get("optim") or {})}
        return cls(
            model=_model_config(data.get("model", "d16")),
            data=build_section(CacheDataConfig, data.get("data"), "data"),
            optim=build_section(OptimConfig, optim, "optim"),
            train=build_section(TrainConfig, data.get("train", {"max_steps": 1000}), "train"),
            sample=build_section(SampleConfig, data.get("sample"), "sample"),
            arch=data.get("arch", "next-scale"),
        )

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> "AARTrainConfig":
        """A YAML file, or a packaged preset name (``d4``, ``d8``, ``d16``)."""
        data, where = read_config(name_or_path, "aar")
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _model_config(spec) -> AARConfig:
    if isinstance(spec, AARConfig):
        return spec
    if isinstance(spec, str):
        return AARConfig.preset(spec)
    if not isinstance(spec, dict):
        raise ValueError(f"config section 'model' must be an AAR preset name or a mapping, got {spec!r}")
    spec = dict(spec)
    base = {}
    if "preset" in spec:
        name = spec.pop("preset")
        if name not in AAR_PRESETS:
            raise ValueError(f"config section 'model': unknown AAR preset {name!r}; choose from {', '.join(AAR_PRESETS)}")
        base = AAR_PRESETS[name]  # unresolved, so sizes still follow an overridden depth
    try:
        return AARConfig.from_dict({**base, **spec})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config section 'model': {exc}") from None


def model_config_for_cache(config: AARConfig, cache: TokenCache) -> AARConfig:
    """``config`` with the condition and the tokenizer sizes of ``cache``."""
    tok = cache.meta
    fields = config.to_dict()
    fields.update(
        condition=cache.condition,
        cond_dim=cache.cond_dim if cache.condition == "clap" else config.cond_dim,
        class_names=cache.class_names,
        scales=list(tok["scales"]),
        latent_dim=None,
        vocab_size=tok["codebook_size"],
    )
    return AARConfig.from_dict(fields)


def next_scale_loss(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position: logits ``[B x L x V]``, codes ``LongTensor[B x L]``."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), codes.reshape(-1))


class AARTask(TrainTask):
    """The AAR transformer (or the next-token baseline, ``cfg.arch``) trained on a token cache
    (its tokenizer frozen)."""

    def __init__(self, cfg: AARTrainConfig, cache: TokenCache, validation: np.ndarray):
        self.cfg, self.cache, self.validation = cfg, cache, validation

    def build(self, ctx: DistContext, schedule: Schedule):
        self.ctx = ctx
        tokenizer = self.cache.tokenizer().to(ctx.device)
        self.model = ARCHITECTURES[self.cfg.arch](model_config_for_cache(self.cfg.model, self.cache), tokenizer).to(ctx.device).train()
        self.wrapped = ctx.wrap(self.model)
        warmup = schedule.steps(self.cfg.optim.warmup_steps, self.cfg.optim.warmup_epochs, "optim.warmup_epochs")
        self.optim = Optimization(self.model, self.cfg.optim, schedule.total_steps, warmup)

    def train_step(self, batches: list[dict], step: int) -> dict[str, float]:
        n = len(batches)
        loss_sum = acc_sum = 0.0
        for i, batch in enumerate(batches):
            with no_sync(self.wrapped, i < n - 1):
                with self.ctx.autocast():
                    logits = self.wrapped(batch["cond"], batch["codes"])
                loss = next_scale_loss(logits, batch["codes"])
                (loss / n).backward()
            loss_sum += float(loss.detach()) / n
            acc_sum += float((logits.detach().argmax(-1) == batch["codes"]).float().mean()) / n
        stats = {"loss": loss_sum, "accuracy": acc_sum}
        stats.update(self.optim.step(step, skip=self.ctx.any(not math.isfinite(loss_sum))))
        return stats

    @torch.inference_mode()
    def validate(self, step: int, monitor: Monitor) -> dict[str, float]:
        if len(self.validation) == 0:
            return {}
        model, device = self.model, self.ctx.device
        model.eval()
        try:
            losses, hits = [], []
            for chunk in np.array_split(self.validation, max(1, len(self.validation) // 32)):
                batch = self.cache.batch(chunk)
                codes = batch["codes"].to(device)
                cond = batch["cond"].to(device) if batch["cond"] is not None else None
                with self.ctx.autocast():
                    logits = model(cond, codes)
                losses.append(F.cross_entropy(logits.transpose(1, 2).float(), codes, reduction="none").cpu())
                hits.append((logits.argmax(-1) == codes).float().cpu())
            self._log_samples(step, monitor)
        finally:
            model.train()
        loss, hit = torch.cat(losses), torch.cat(hits)
        per_scale = {}
        for k, (begin, end) in enumerate(model.scale_ranges()):
            per_scale[f"val_scale/accuracy_{k:02d}"] = float(hit[:, begin:end].mean())
            per_scale[f"val_scale/loss_{k:02d}"] = float(loss[:, begin:end].mean())
        monitor.scalars(step, per_scale)  # TensorBoard only: 32 numbers would flood the console
        return {"loss": float(loss.mean()), "accuracy": float(hit.mean())}

    def _log_samples(self, step: int, monitor: Monitor):
        s = self.cfg.sample
        if s.clips <= 0:
            return
        model = self.model
        batch = self.cache.batch(self.validation[: s.clips])
        sr = model.tokenizer.sample_rate
        if step == 0:
            for i, wav in enumerate(model.tokenizer.decode(model.split_codes(batch["codes"]))):
                monitor.audio(0, f"audio/{i}_held_out", wav, sr)
        cond = batch["cond"]
        if cond is None:
            out = model.generate(None, cfg=s.cfg, top_k=s.top_k, top_p=s.top_p, seed=s.seed, num_samples=s.clips,
                                 cfg_schedule=s.cfg_schedule)
        else:
            out = model.generate(cond, cfg=s.cfg, top_k=s.top_k, top_p=s.top_p, seed=s.seed, cfg_schedule=s.cfg_schedule)
        for i, wav in enumerate(out.audio):
            monitor.audio(step, f"audio/{i}_generated", wav, sr)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optim.state_dict()}

    def load_state_dict(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optimizer"])

    def export(self, directory: Path) -> Path:
        return self.model.save_pretrained(directory)


@dataclass
class AARTrainResult:
    summary: dict
    model: AAR  # this process's trained model (training mode)


def train_aar(config: AARTrainConfig, cache: str | os.PathLike, out: str | os.PathLike, resume: bool = False) -> AARTrainResult:
    """Train an AAR on the token cache ``cache`` into ``out``; under torchrun every process calls
    this. The final model is ``out/model`` (``AAR.from_pretrained``, tokenizer included)."""
    out = Path(out)
    token_cache = TokenCache(cache)
    ctx = init_distributed(config.train.device, config.train.precision)
    lock = ExitStack()
    try:
        lock.enter_context(run_lock(out, ctx.is_main))  # before anything is written into the run folder
        val_idx = held_out_windows(token_cache, config.data.val_fraction, config.data.val_windows, config.train.seed)
        loader = StreamingTokenLoader(token_cache, config.data.batch_size, config.train.seed, ctx.rank, ctx.world_size,
                                      exclude=val_idx, block_shards=config.data.block_shards)
        num_train = len(token_cache) - len(val_idx)
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            run_config = {**config.to_dict(), "cache": str(Path(cache).resolve())}
            atomic_write_text(yaml.safe_dump(run_config, sort_keys=False), out / RUN_CONFIG)
            log.info(
                "token cache %s: %d training windows, %d held out; condition %s",
                cache, num_train, len(val_idx), token_cache.condition,
            )
            log.info(
                "%s model; %d process(es) on %s, precision %s, batch %d per process x %d accumulation",
                config.arch, ctx.world_size, ctx.device, "bf16" if ctx.autocast_dtype is not None else "fp32",
                config.data.batch_size, config.train.grad_accum,
            )
        task = AARTask(config, token_cache, val_idx)
        trainer = Trainer(
            task, loader, config.train, ctx, out,
            epoch_size=num_train, batch_size=config.data.batch_size, run_config=config.to_dict(),
        )
        summary = trainer.run(resume=resume)
        return AARTrainResult(summary, unwrap(task.wrapped))
    finally:
        lock.close()
        ctx.close()


def saved_cache(out: str | os.PathLike) -> str:
    """The token cache an earlier run in ``out`` trained on."""
    path = Path(out) / RUN_CONFIG
    if not path.is_file():
        raise ValueError(f"{out}: no {RUN_CONFIG} from an earlier run; pass --cache")
    cache = (yaml.safe_load(path.read_text()) or {}).get("cache")
    if not cache:
        raise ValueError(f"{path}: no token cache recorded; pass --cache")
    return cache


def load_run_config(out: str | os.PathLike) -> AARTrainConfig:
    """The configuration an earlier run wrote to ``out/train_config.yaml``."""
    path = Path(out) / RUN_CONFIG
    if not path.is_file():
        raise ValueError(f"{out}: no {RUN_CONFIG} from an earlier run; pass --config")
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("cache", None)
    return AARTrainConfig.from_dict(data)
