"""AAR: the acoustic autoregressive transformer that predicts a whole scale of SAT tokens
per step (next-scale prediction)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aar.checkpoint import CheckpointError, is_folder_checkpoint, load_folder, save_folder
from aar.tokenizer import SAT
from aar.transformer.blocks import AdaLNBlock, AdaLNHead, KVCache
from aar.transformer.config import AARConfig
from aar.transformer.sampling import check_guidance_schedule, guidance_ramp, guided_logits, sample_tokens

TOKENIZER_SUBDIR = "tokenizer"


@dataclass
class Generation:
    """Output of :meth:`AAR.generate`: ``codes`` (one ``LongTensor[B x s_k]`` per scale) and
    ``audio`` ``Tensor[B x 1 x window]`` at ``sample_rate``."""

    codes: list[torch.Tensor]
    audio: torch.Tensor
    sample_rate: int


class ConditionMLP(nn.Module):
    """Condition vector ``[B x cond_dim]`` -> ``[B x C]``: two bias-free linears with GELU (tanh)."""

    def __init__(self, cond_dim: int, width: int):
        super().__init__()
        self.fc1 = nn.Linear(cond_dim, width, bias=False)
        self.fc2 = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class AAR(nn.Module):
    """Next-scale prediction transformer over the tokens of a :class:`~aar.SAT` tokenizer.

    The sequence is the concatenation of all scales (``L = sum(scales)``, 455 for the paper's
    schedule). Position 0..s_1-1 holds the start token (the embedded condition plus a learned
    start position); the input for scale k+1 is the tokenizer's running latent sum after scale
    k, area-downsampled to ``s_{k+1}`` positions and projected by ``word_embed``. A token of
    scale k attends to every token of scales <= k (block-causal). Each position predicts the
    code at the same place of its own scale.

    >>> from aar import SAT, SATConfig
    >>> sat = SAT(SATConfig.preset("tiny"))
    >>> model = AAR(AARConfig.preset("d4"), sat).eval()
    >>> out = model.generate(torch.randn(2, 512), cfg=4.0, seed=0)
    >>> out.audio.shape
    torch.Size([2, 1, 24000])

    The tokenizer is held by reference, not as a submodule: it is frozen, never in the
    optimizer or the state dict, and always in eval mode; it follows the model's device.
    """

    kind = "aar"

    def __init__(self, config: AARConfig, tokenizer: SAT):
        super().__init__()
        config = _resolve_config(config, tokenizer)
        self.config = config
        object.__setattr__(self, "_tokenizer", tokenizer.eval())
        c, scales = config.width, config.scales
        self.num_scales = len(scales)
        self.seq_len = sum(scales)

        self.word_embed = nn.Linear(config.latent_dim, c)
        self.cond_mlp = ConditionMLP(config.cond_dim, c)
        if config.condition == "label":
            self.class_embed = nn.Embedding(config.num_classes, config.cond_dim)
        # The null condition: a fixed random vector, never trained (as released).
        self.register_buffer("uncond_embedding", torch.randn(1, config.cond_dim) / math.sqrt(config.cond_dim))
        self.start_pos = nn.Parameter(torch.empty(1, scales[0], c))
        self.pos_embed = nn.Parameter(torch.empty(1, self.seq_len, c))
        self.level_embed = nn.Embedding(self.num_scales, c)
        # stochastic depth grows linearly from 0 (first block) to drop_path_rate (last)
        rates = [config.drop_path_rate * i / max(1, config.depth - 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(
            AdaLNBlock(
                c,
                c,
                config.num_heads,
                config.mlp_ratio,
                config.cos_attn,
                config.attn_tau,
                config.norm_eps,
                drop_path=rate,
            )
            for rate in rates
        )
        self.head = AdaLNHead(c, c, config.vocab_size, config.norm_eps)

        level = torch.cat([torch.full((s,), k) for k, s in enumerate(scales)])
        self.register_buffer("level_index", level, persistent=False)
        self.register_buffer("attn_mask", level[None, :] <= level[:, None], persistent=False)
        self.init_weights()

    # ------------------------------------------------------------------ properties
    @property
    def tokenizer(self) -> SAT:
        return self._tokenizer

    @property
    def scales(self) -> list[int]:
        return list(self.config.scales)

    @property
    def device(self) -> torch.device:
        return self.pos_embed.device

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype; ``model.to(torch.bfloat16)`` makes generation run in bfloat16 (the
        tokenizer stays in float32)."""
        return self.pos_embed.dtype

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._tokenizer.to(self.pos_embed.device)  # the tokenizer follows the device, never the dtype
        return self

    def no_weight_decay(self) -> set[str]:
        """Parameters trained without weight decay (as released): position, level and start
        embeddings and the attention logit scales (biases and other 1-D tensors are excluded
        by the optimiser anyway)."""
        names = {"start_pos", "pos_embed", "level_embed.weight"}
        return names | {n for n, _ in self.named_parameters() if n.endswith("attn.log_scale")}

    @property
    def num_steps(self) -> int:
        """Autoregressive steps per clip: one per scale."""
        return self.num_scales

    def scale_ranges(self) -> list[tuple[int, int]]:
        """``(begin, end)`` sequence positions of each scale."""
        ends = torch.tensor(self.config.scales).cumsum(0).tolist()
        return list(zip([0] + ends[:-1], ends))

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_weights(self, std: float | None = None) -> None:
        """The release's initialisation: truncated normals of std ``sqrt(1 / (3 C))`` for linear
        and embedding weights, zero biases, residual projections divided by ``sqrt(2 depth)``,
        AdaLN gains x1e-5 and scales/shifts x0.5, the classifier x0.02."""
        c, depth = self.config.width, self.config.depth
        std = math.sqrt(1.0 / c / 3.0) if std is None else std
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=std)
        nn.init.trunc_normal_(self.start_pos, std=std)
        nn.init.trunc_normal_(self.pos_embed, std=std)
        if self.config.condition == "label":
            nn.init.normal_(self.class_embed.weight, std=1.0 / math.sqrt(self.config.cond_dim))
        self.head.out.weight.mul_(0.02)
        self.head.adaln.weight.mul_(0.5)
        for block in self.blocks:
            block.attn.proj.weight.div_(math.sqrt(2 * depth))
            block.mlp.fc2.weight.div_(math.sqrt(2 * depth))
            block.adaln.weight[2 * c :].mul_(0.5)
            block.adaln.weight[: 2 * c].mul_(1e-5)

    # ------------------------------------------------------------------ conditioning
    def condition_vectors(self, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The condition as ``[B x cond_dim]`` vectors before the MLP: CLAP-space vectors as
        given, class ids looked up in the class table, None -> the null condition."""
        cfg = self.config
        if cond is None:
            return self.uncond_embedding.expand(batch, -1)
        if cfg.condition == "none":
            raise ValueError("this model is unconditional: pass cond=None")
        if not isinstance(cond, torch.Tensor):
            raise TypeError(f"cond must be a torch.Tensor or None, got {type(cond).__name__}")
        cond = cond.to(self.device)
        if cfg.condition == "label":
            if cond.dim() != 1 or cond.is_floating_point():
                raise ValueError(f"cond must be class ids LongTensor[B], got {cond.dtype} {tuple(cond.shape)}")
            if cond.numel() and (int(cond.min()) < 0 or int(cond.max()) >= cfg.num_classes):
                raise ValueError(f"class ids must be in [0, {cfg.num_classes}), got {cond.tolist()}")
            return self.class_embed(cond.long())
        if cond.dim() != 2 or cond.shape[1] != cfg.cond_dim:
            raise ValueError(f"cond must be [B x {cfg.cond_dim}] condition vectors, got shape {tuple(cond.shape)}")
        return cond.to(self.dtype)

    def _drop_conditions(self, vectors: torch.Tensor) -> torch.Tensor:
        """Condition dropout (training only): each row becomes the null condition with
        probability ``cond_drop_rate``."""
        if not self.training or self.config.cond_drop_rate == 0.0:
            return vectors
        drop = torch.rand(vectors.shape[0], 1, device=vectors.device) < self.config.cond_drop_rate
        return torch.where(drop, self.uncond_embedding.to(vectors.dtype), vectors)

    # ------------------------------------------------------------------ teacher forcing
    def split_codes(self, codes: list[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
        """Codes as one ``LongTensor[B x s_k]`` per scale; accepts that list or the flat
        ``[B x L]`` concatenation (any integer dtype, e.g. int16 from a token cache)."""
        if isinstance(codes, torch.Tensor):
            if codes.dim() != 2 or codes.shape[1] != self.seq_len:
                raise ValueError(f"flat codes must be [B x {self.seq_len}], got shape {tuple(codes.shape)}")
            codes = list(codes.to(self.device, torch.long).split(self.config.scales, dim=1))
        if len(codes) != self.num_scales:
            raise ValueError(f"codes must hold {self.num_scales} scales, got {len(codes)}")
        out = []
        for k, c in enumerate(codes):
            if c.dim() != 2 or c.shape[1] != self.config.scales[k]:
                raise ValueError(f"codes of scale {k} must be [B x {self.config.scales[k]}], got {tuple(c.shape)}")
            out.append(c.to(self.device, torch.long))
        return out

    def level_positions(self) -> torch.Tensor:
        """Level plus absolute position embedding of every position: ``[1 x L x C]``."""
        return self.level_embed(self.level_index)[None] + self.pos_embed

    def forward(self, cond: torch.Tensor | None, codes: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``Tensor[B x L x V]`` (float32).

        ``cond``: ``Tensor[B x cond_dim]`` (CLAP-space vectors), ``LongTensor[B]`` (class ids)
        or None (null condition); ``codes``: the clip's codes, per scale or flat ``[B x L]``.
        In training mode conditions are dropped with probability ``cond_drop_rate``; in eval
        mode never. Positions ``sum(s[:k]) .. sum(s[:k+1]) - 1`` predict scale k.
        """
        codes = self.split_codes(codes)
        b = codes[0].shape[0]
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            inputs = torch.cat(self.tokenizer.teacher_forcing_inputs(codes), dim=1)
        return self._teacher_forced(cond, b, self.word_embed(inputs.to(self.dtype)))

    def _teacher_forced(self, cond, batch: int, inputs_blc: torch.Tensor) -> torch.Tensor:
        """The masked full-sequence pass shared with the next-token baseline: start token from the
        condition, then ``inputs_blc`` (``[B x L-1 x C]``), positions, blocks, head -> float32 logits."""
        cond_bc = self.cond_mlp(self._drop_conditions(self.condition_vectors(cond, batch)))
        start = cond_bc[:, None] + self.start_pos
        x = torch.cat((start, inputs_blc.to(start.dtype)), dim=1) + self.level_positions()
        for block in self.blocks:
            x = block(x, block.modulation(cond_bc), attn_mask=self.attn_mask)
        return self.head(x, self.head.modulation(cond_bc)).float()

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def generate(
        self,
        cond: torch.Tensor | None = None,
        cfg: float = 4.0,
        top_k: int = 200,
        top_p: float = 0.95,
        seed: int | None = None,
        num_samples: int = 1,
        cfg_schedule: str = "linear",
    ) -> Generation:
        """Sample clips, one step per scale with a key/value cache.

        ``cond``: ``Tensor[B x cond_dim]``, ``LongTensor[B]`` class ids, or None
        (unconditional: ``num_samples`` clips from the null condition). Each condition gives
        ``num_samples`` clips (rows ``i * num_samples ...`` belong to condition i).
        Classifier-free guidance at scale k (0-based, K scales) has strength
        ``t = cfg * k / (K - 1)`` (``cfg_schedule="linear"``, the release's) or ``t = cfg``
        (``"constant"``): ``logits = (1 + t) * cond - t * uncond``; the conditional and
        null halves run as one batch, and the null half is skipped when ``cfg == 0`` or there
        is no condition. ``top_k = 1`` is greedy; otherwise top-k / top-p sampling from a
        ``torch.Generator`` seeded with ``seed`` (None: a random seed), so a seed reproduces
        the output exactly on a given device.
        """
        batch, guided, cond_bc, generator = self._prepare_generation(cond, cfg, seed, num_samples, cfg_schedule)
        rows = cond_bc.shape[0]
        modulations = [block.modulation(cond_bc) for block in self.blocks]
        head_modulation = self.head.modulation(cond_bc)
        caches = [
            KVCache(rows, self.config.num_heads, self.seq_len, self.config.head_dim, self.device, cond_bc.dtype)
            for _ in self.blocks
        ]

        level_pos = self.level_positions()
        s0 = self.config.scales[0]
        x = cond_bc[:, None] + self.start_pos + level_pos[:, :s0]
        f_hat = torch.zeros(batch, self.config.latent_dim, self.tokenizer.config.latent_length, device=self.device)
        codes = []
        for k, (begin, end) in enumerate(self.scale_ranges()):
            for block, modulation, cache in zip(self.blocks, modulations, caches):
                x = block(x, modulation, cache=cache)
            logits = self.head(x, head_modulation).float()
            if guided:
                logits = guided_logits(logits[:batch], logits[batch:], guidance_ramp(cfg, k, self.num_scales, cfg_schedule))
            idx = sample_tokens(logits, top_k, top_p, generator)
            codes.append(idx)
            f_hat, next_input = self.tokenizer.next_scale_input(k, f_hat, idx)
            if k + 1 < self.num_scales:
                nxt = self.config.scales[k + 1]
                x = self.word_embed(next_input.to(self.dtype)) + level_pos[:, end : end + nxt]
                if guided:
                    x = x.repeat(2, 1, 1)
        audio = self.tokenizer.decode_quantized_sum(f_hat)
        return Generation(codes=codes, audio=audio, sample_rate=self.tokenizer.sample_rate)

    def _prepare_generation(
        self, cond: torch.Tensor | None, cfg: float, seed: int | None, num_samples: int, cfg_schedule: str = "linear"
    ) -> tuple[int, bool, torch.Tensor, torch.Generator]:
        """What every generator starts from: (clips ``B``, whether guidance runs, the embedded
        conditions ``[R x C]`` with the null half appended when guided (R = 2B, else B), the
        seeded random generator)."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        check_guidance_schedule(cfg_schedule)
        if cond is None:
            batch = num_samples
            vectors = self.condition_vectors(None, batch)
        else:
            vectors = self.condition_vectors(cond, 0).repeat_interleave(num_samples, dim=0)
            batch = vectors.shape[0]
        guided = cfg != 0 and cond is not None
        if guided:
            vectors = torch.cat((vectors, self.uncond_embedding.expand(batch, -1)))
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        return batch, guided, self.cond_mlp(vectors), generator

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors``, and the paired tokenizer into
        ``tokenizer/``, so the folder is self-contained."""
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_SUBDIR)
        return save_folder(directory, self.kind, self.config.to_dict(), self.state_dict())

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        tokenizer: SAT | str | os.PathLike | None = None,
        device: str | torch.device | None = None,
    ) -> "AAR":
        """Load a model from our folder format (its tokenizer from ``tokenizer/`` unless one is
        given) or from the authors' released ``.pth`` (which holds no tokenizer: pass
        ``tokenizer=`` a :class:`SAT` or its path). Returned in eval mode."""
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"{path}: no such file or directory")
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = SAT.from_pretrained(tokenizer)
        if is_folder_checkpoint(path):
            config, state = load_folder(path, cls.kind)
            if tokenizer is None:
                if not is_folder_checkpoint(path / TOKENIZER_SUBDIR):
                    raise CheckpointError(f"{path}: no {TOKENIZER_SUBDIR}/ folder; pass tokenizer=")
                tokenizer = SAT.from_pretrained(path / TOKENIZER_SUBDIR)
            try:
                cfg = AARConfig.from_dict(config)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: invalid AAR config ({exc})") from None
            model = cls(cfg, _check_tokenizer(tokenizer, path))
            load_state_strict(model, state, path)
        else:
            from aar.transformer.official import load_official_aar

            model = load_official_aar(path, _check_tokenizer(tokenizer, path))
        model.eval()
        if device is not None:
            model.to(device)
        return model


def _check_tokenizer(tokenizer, path) -> SAT:
    if tokenizer is None:
        raise CheckpointError(
            f"{path}: an authors' AAR checkpoint holds no tokenizer; pass tokenizer= (a SAT or the path of its checkpoint)"
        )
    if not isinstance(tokenizer, SAT):
        raise TypeError(f"tokenizer must be a SAT or a path, got {type(tokenizer).__name__}")
    return tokenizer


def _resolve_config(config: AARConfig, tokenizer: SAT) -> AARConfig:
    """Fill the tokenizer-dependent fields from ``tokenizer`` and check that the rest agree."""
    tok = tokenizer.config
    wanted = {"scales": list(tok.scales), "latent_dim": tok.latent_dim, "vocab_size": tok.codebook_size}
    fields = config.to_dict()
    for name, value in wanted.items():
        if fields[name] is None:
            fields[name] = value
        elif fields[name] != value:
            raise ValueError(f"the AAR's {name} {fields[name]} does not match its tokenizer's {value}")
    return AARConfig.from_dict(fields)


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], path) -> None:
    """``load_state_dict`` with every missing/unexpected key or shape mismatch reported as a
    :class:`CheckpointError` naming ``path``."""
    from aar.tokenizer.model import _load_state

    _load_state(model, state, path)
