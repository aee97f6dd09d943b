"""SAT training: the tokenizer as a :class:`~aar.train.engine.TrainTask` (GAN with the released
loss weights) and :func:`train_tokenizer`, the entry point of ``aar train-tokenizer``.

One step: the generator (SAT) reconstructs the batch and is updated on
``3 adv + 3 feat + 0.1 time + freq + commit``; then, on 2 of every 3 steps, the multi-scale STFT
discriminator is updated on the hinge loss of the real batch against the (detached)
reconstructions. Codebooks are EMA buffers updated inside the forward pass; the quantizer
all-reduces their statistics (and broadcasts k-means initialisations and re-seeded codes), so
the DDP wrappers do not broadcast buffers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import nn

from aar.checkpoint import atomic_write_text
from aar.data import DataConfig, ValidationSet, prepare_training_data
from aar.tokenizer import SAT, SATConfig
from aar.tokenizer.discriminator import DiscriminatorConfig
from aar.tokenizer.hifigan_discriminators import build_discriminator
from aar.tokenizer.losses import GeneratorLoss, LossWeights, discriminator_loss, mel_distance, stft_distance
from aar.train.config import build_section, read_config
from aar.train.distributed import DistContext, init_distributed, no_sync, unwrap
from aar.train.engine import Schedule, TrainConfig, Trainer, TrainTask, run_lock
from aar.train.monitor import Monitor
from aar.train.optim import OptimConfig, Optimization

log = logging.getLogger("aar.train")

RUN_CONFIG = "train_config.yaml"
MODEL_INITS = ("default", "unit_gain")


# ---------------------------------------------------------------------- configuration
@dataclass
class TokenizerTrainConfig:
    """Everything a tokenizer run needs. YAML layout: ``model`` (a SAT preset name, or a mapping of
    SATConfig fields, optionally with ``preset:``), ``discriminator``, ``loss``, ``data``, ``optim``,
    ``train`` sections, ``disc_skip_every`` (the discriminator is not updated on steps divisible
    by it: 3 = updated on 2 of every 3 steps as released; 0 = every step), ``adversarial_start``
    (the first step of the adversarial phase: before it the discriminator neither runs nor learns
    and the generator learns from the reconstruction losses alone, a warm-up like VQGAN's
    ``disc_start``; 0 = adversarial from the first step, as released; null = never, a
    reconstruction-only tokenizer) and ``model_init``
    (``default``: PyTorch's initialisation, as released; ``unit_gain``: see :func:`unit_gain_init`)."""

    model: SATConfig = field(default_factory=SATConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(betas=[0.5, 0.9]))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=1000))
    disc_skip_every: int = 3
    adversarial_start: int | None = 0
    model_init: str = "default"

    def __post_init__(self):
        if self.disc_skip_every < 0:
            raise ValueError(f"disc_skip_every must be >= 0, got {self.disc_skip_every}")
        if self.adversarial_start is not None and self.adversarial_start < 0:
            raise ValueError(f"adversarial_start must be >= 0, got {self.adversarial_start}")
        if self.model_init not in MODEL_INITS:
            raise ValueError(f"model_init must be one of {MODEL_INITS}, got {self.model_init!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "TokenizerTrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config section(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(
            model=_model_config(data.get("model", "tiny")),
            discriminator=build_section(DiscriminatorConfig, data.get("discriminator"), "discriminator"),
            loss=build_section(LossWeights, data.get("loss"), "loss"),
            data=build_section(DataConfig, data.get("data"), "data"),
            optim=build_section(OptimConfig, data.get("optim"), "optim"),
            train=build_section(TrainConfig, data.get("train", {"max_steps": 1000}), "train"),
            disc_skip_every=int(data.get("disc_skip_every", 3)),
            adversarial_start=_optional_int(data.get("adversarial_start", 0)),
            model_init=str(data.get("model_init", "default")),
        )

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> "TokenizerTrainConfig":
        """A YAML file, or a packaged preset name (``tiny``, ``paper-d128-lat128``, ``paper-d1024-lat64``)."""
        data, where = read_config(name_or_path, "tokenizer")
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["discriminator"]["kernel_size"] = list(self.discriminator.kernel_size)
        out["discriminator"]["stride"] = list(self.discriminator.stride)
        return out


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


def _model_config(spec) -> SATConfig:
    if isinstance(spec, SATConfig):
        return spec
    if isinstance(spec, str):
        return SATConfig.preset(spec)
    if not isinstance(spec, dict):
        raise ValueError(f"config section 'model' must be a SAT preset name or a mapping, got {spec!r}")
    spec = dict(spec)
    base = SATConfig.preset(spec.pop("preset")).to_dict() if "preset" in spec else {}
    try:
        return SATConfig.from_dict({**base, **spec})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config section 'model': {exc}") from None


# ---------------------------------------------------------------------- the task
@torch.no_grad()
def unit_gain_init(sat: SAT) -> None:
    """Set every weight-normalised conv of the encoder and decoder to unit gain (``weight_g = 1``,
    keeping the kernel directions drawn at construction) and zero bias.

    With PyTorch's default initialisation each conv shrinks the signal (variance about /3), so
    through the SEANet's depth the output of a fresh model is set by its biases and does not
    depend on the input; it takes a few hundred steps to escape that. At unit gain the
    reconstruction depends on the input from the first step, which is what a run of minutes
    on a CPU needs (the ``tiny`` preset uses it; the paper presets keep the released default)."""
    for module in [*sat.encoder.modules(), *sat.decoder.modules()]:
        gain = getattr(module, "weight_g", None)
        if isinstance(gain, torch.Tensor):
            gain.fill_(1.0)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()


class _Generator(nn.Module):
    """SAT's training forward with the quantizer in float32 even under bf16 autocast: nearest-code
    search by ``|x|^2 - 2 x.e + |e|^2`` loses the codes in bf16."""

    def __init__(self, sat: SAT):
        super().__init__()
        self.sat = sat

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Tensor[B x 1 x T]`` -> (reconstruction ``[B x 1 x T]``, commitment loss)."""
        latent = self.sat.encoder(wav)
        with torch.autocast(device_type=wav.device.type, enabled=False):
            quantized, _, commit = self.sat.quantizer(latent.float())
        return self.sat.decoder(quantized)[..., : wav.shape[-1]], commit


class SATTask(TrainTask):
    """Generator (SAT) + multi-scale STFT discriminator, trained adversarially."""

    def __init__(self, cfg: TokenizerTrainConfig, validation: ValidationSet, media_clips: int = 2):
        self.cfg = cfg
        self.validation = validation
        self.media_clips = media_clips

    def build(self, ctx: DistContext, schedule: Schedule):
        cfg = self.cfg
        self.ctx = ctx
        self.sat = SAT(cfg.model).to(ctx.device).train()
        if cfg.model_init == "unit_gain":
            unit_gain_init(self.sat)
        self.disc = build_discriminator(cfg.discriminator).to(ctx.device).train()
        # Codebook buffers change inside forward and are synchronised by the quantizer itself.
        self.generator = ctx.wrap(_Generator(self.sat), sync_buffers=False)
        self.disc_ddp = ctx.wrap(self.disc)
        self.loss = GeneratorLoss(cfg.loss, cfg.model.sample_rate).to(ctx.device)
        warmup = schedule.steps(cfg.optim.warmup_steps, cfg.optim.warmup_epochs, "optim.warmup_epochs")
        self.opt_g = Optimization(self.sat, cfg.optim, schedule.total_steps, warmup)
        self.opt_d = Optimization(self.disc, cfg.optim, schedule.total_steps, warmup)

    def adversarial(self, step: int) -> bool:
        """Whether ``step`` is in the adversarial phase (see ``adversarial_start``)."""
        start = self.cfg.adversarial_start
        return start is not None and step >= start

    def updates_discriminator(self, step: int) -> bool:
        k = self.cfg.disc_skip_every
        return self.adversarial(step) and (k == 0 or step % k != 0)

    def train_step(self, batches: list[torch.Tensor], step: int) -> dict[str, float]:
        adversarial = self.adversarial(step)
        update_disc = self.updates_discriminator(step)
        n = len(batches)
        parts_sum: dict[str, float] = {}
        g_total = d_total = 0.0
        for i, wav in enumerate(batches):
            not_last = i < n - 1
            # generator: gradients reach the SAT through the discriminator, whose own weights are
            # frozen here (it runs unwrapped, outside DDP's gradient reduction). Before the
            # adversarial phase the discriminator is not run at all.
            self.disc.requires_grad_(False)
            with no_sync(self.generator, not_last):
                with self.ctx.autocast():
                    recon, commit = self.generator(wav)
                    judged = ()
                    if adversarial:
                        with torch.no_grad():
                            _, features_real = self.disc(wav)
                        logits_fake, features_fake = self.disc(recon)
                        judged = (logits_fake, features_real, features_fake)
                # losses in float32, outside autocast (the mel filterbank product would run in bf16)
                g_loss, parts = self.loss(wav, recon, commit, *judged)
                (g_loss / n).backward()
            self.disc.requires_grad_(True)
            g_total += float(g_loss.detach()) / n
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) / n
            if update_disc:
                with no_sync(self.disc_ddp, not_last):
                    with self.ctx.autocast():
                        logits, _ = self.disc_ddp(torch.cat([wav, recon.detach().to(wav.dtype)]))
                    b = wav.shape[0]
                    d_loss = discriminator_loss([lg[:b] for lg in logits], [lg[b:] for lg in logits])
                    (d_loss / n).backward()
                d_total += float(d_loss.detach()) / n
        stats = {"loss": g_total}
        stats.update(parts_sum)
        g = self.opt_g.step(step, skip=self.ctx.any(not math.isfinite(g_total)))
        stats["lr"] = g["lr"]
        if "grad_norm" in g:
            stats["grad_norm_g"] = g["grad_norm"]
        if update_disc:  # a skipped generator step skips the discriminator's too: its input was poisoned
            d = self.opt_d.step(step, skip="skipped" in g or self.ctx.any(not math.isfinite(d_total)))
            stats["disc_loss"] = d_total
            if "grad_norm" in d:
                stats["grad_norm_d"] = d["grad_norm"]
            if "skipped" in d:
                stats["skipped"] = 1.0
        if "skipped" in g:
            stats["skipped"] = 1.0
        return stats

    @torch.inference_mode()
    def validate(self, step: int, monitor: Monitor) -> dict[str, float]:
        if len(self.validation) == 0:
            return {}
        sat, sr = self.sat, self.cfg.model.sample_rate
        sat.eval()
        mel, spec, recons = [], [], []
        try:
            for chunk in self.validation.wav.split(16):
                chunk = chunk.to(self.ctx.device)
                recon = sat(chunk)[0].float()
                mel.append(mel_distance(chunk, recon, sr).cpu())
                spec.append(stft_distance(chunk, recon).cpu())
                if sum(len(r) for r in recons) < self.media_clips:
                    recons.append(recon[: self.media_clips].cpu())
        finally:
            sat.train()
        self._log_media(step, monitor, torch.cat(recons)[: self.media_clips])
        return {"mel_distance": float(torch.cat(mel).mean()), "stft_distance": float(torch.cat(spec).mean())}

    def _log_media(self, step: int, monitor: Monitor, recons: torch.Tensor):
        from aar.audio.spectral import MelSpectrogram

        sr = self.cfg.model.sample_rate
        mel = MelSpectrogram(sr, n_fft=1024, hop_length=256, n_mels=80, center=True)
        for i, recon in enumerate(recons):
            real = self.validation.wav[i]
            if step == 0:
                monitor.audio(0, f"audio/{i}_original", real, sr)
            monitor.audio(step, f"audio/{i}_reconstruction", recon, sr)
            pair = torch.cat([mel(real[None])[0], mel(recon[None])[0]], dim=1)  # original | reconstruction
            monitor.image(step, f"mel/{i}_original_vs_reconstruction", pair)

    def state_dict(self) -> dict:
        return {
            "sat": self.sat.state_dict(),
            "discriminator": self.disc.state_dict(),
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
        }

    def load_state_dict(self, state: dict):
        self.sat.load_state_dict(state["sat"])
        self.disc.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["optimizer_g"])
        self.opt_d.load_state_dict(state["optimizer_d"])

    def export(self, directory: Path) -> Path:
        return self.sat.save_pretrained(directory)


# ---------------------------------------------------------------------- entry point
@dataclass
class TokenizerTrainResult:
    summary: dict
    model: SAT  # this process's trained tokenizer (training mode)


def train_tokenizer(
    config: TokenizerTrainConfig,
    data: str | os.PathLike | None,
    out: str | os.PathLike,
    resume: bool = False,
    audioset_csv: str | os.PathLike | None = None,
    val_data: str | os.PathLike | None = None,
) -> TokenizerTrainResult:
    """Train a SAT on ``data`` (folder, AudioSet folder + ``audioset_csv``, or WebDataset shards)
    into ``out``; validation clips come from ``val_data`` when given, else are held out of ``data``.
    Under ``torchrun`` every process calls this. ``data`` may be None with ``resume`` (the
    locations are read from ``out/train_config.yaml``). The final model is ``out/model``
    (``SAT.from_pretrained``)."""
    out = Path(out)
    if data is None:
        data, audioset_csv, val_data = saved_data_location(out)
    ctx = init_distributed(config.train.device, config.train.precision)
    lock = ExitStack()
    try:
        lock.enter_context(run_lock(out, ctx.is_main))  # before anything is written into the run folder
        window = config.model.window_samples
        training_data = prepare_training_data(
            data,
            config.data,
            window,
            config.model.sample_rate,
            seed=config.train.seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
            audioset_csv=audioset_csv,
            val_data=val_data,
            with_validation=ctx.is_main,
            pin_memory=ctx.device.type == "cuda",
        )
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            location = {"data": str(data), "audioset_csv": audioset_csv, "val_data": val_data}
            location = {k: None if v is None else str(v) for k, v in location.items()}
            run_config = {**config.to_dict(), "data_location": location}
            atomic_write_text(yaml.safe_dump(run_config, sort_keys=False), out / RUN_CONFIG)
            log.info("data: %s", training_data.describe())
            log.info(
                "%d process(es) on %s, precision %s, batch %d per process x %d accumulation",
                ctx.world_size,
                ctx.device,
                "bf16" if ctx.autocast_dtype is not None else "fp32",
                config.data.batch_size,
                config.train.grad_accum,
            )
        task = SATTask(config, training_data.validation)
        trainer = Trainer(
            task,
            training_data.loader,
            config.train,
            ctx,
            out,
            epoch_size=training_data.epoch_size,
            batch_size=config.data.batch_size,
            run_config=config.to_dict(),
            failures=training_data.failures,
        )
        summary = trainer.run(resume=resume)
        return TokenizerTrainResult(summary, unwrap(task.generator).sat)
    finally:
        lock.close()
        ctx.close()


def saved_data_location(out: Path) -> tuple[str, str | None, str | None]:
    """(data, audioset_csv, val_data) recorded in ``out/train_config.yaml`` by an earlier run."""
    path = Path(out) / RUN_CONFIG
    if not path.is_file():
        raise ValueError(f"{out}: no {RUN_CONFIG} from an earlier run; pass --data")
    loc = (yaml.safe_load(path.read_text()) or {}).get("data_location") or {}
    if not loc.get("data"):
        raise ValueError(f"{path}: no data location recorded; pass --data")
    return loc["data"], loc.get("audioset_csv"), loc.get("val_data")


def load_run_config(out: str | os.PathLike) -> TokenizerTrainConfig:
    """The configuration an earlier run wrote to ``out/train_config.yaml``."""
    path = Path(out) / RUN_CONFIG
    if not path.is_file():
        raise ValueError(f"{out}: no {RUN_CONFIG} from an earlier run; pass --config")
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("data_location", None)
    return TokenizerTrainConfig.from_dict(data)
