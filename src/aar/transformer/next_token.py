"""The next-token baseline: the AAR's transformer predicting the tokens of a clip one at a time.

Same blocks, width, depth, conditioning, tokenizer and parameter set as :class:`AAR`; only
the factorisation differs. The 455 tokens of a clip are read in scale order (coarse to fine,
left to right inside a scale) as one flat sequence, and token ``i`` is predicted from the
condition and tokens ``0 .. i-1`` under a causal mask, so generation takes one step per token
(455) where next-scale prediction takes one per scale (16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aar.checkpoint import CheckpointError, is_folder_checkpoint
from aar.tokenizer import SAT
from aar.transformer.blocks import KVCache
from aar.transformer.config import AARConfig
from aar.transformer.next_scale import AAR, Generation
from aar.transformer.sampling import guidance_ramp, guided_logits, sample_tokens


class NextTokenAR(AAR):
    """Next-token prediction over the flat scale-ordered token sequence of a :class:`~aar.SAT`.

    Input embedding (the same parameters as :class:`AAR`, so the two models have the same
    size): slot 0 is the start token (the embedded condition plus a learned start position);
    slot ``i >= 1`` carries token ``i-1`` as its codebook vector in its own scale's codebook
    (``latent_dim`` floats, the tokenizer's frozen embedding of that code) projected by the
    same ``word_embed`` linear. Every slot adds the learned absolute position of slot ``i`` and
    the level (scale) embedding of the token it predicts, so the model knows which scale and
    place comes next. Slot ``i`` predicts token ``i``; attention is causal over slots.

    Training, conditioning, guidance and sampling are those of :class:`AAR`; classifier-free
    guidance ramps with the scale of the token being sampled (``t = cfg * k / (K - 1)``, or
    ``t = cfg`` with ``cfg_schedule="constant"``), so both models use the same strength for every
    token.

    >>> from aar import SAT, SATConfig
    >>> model = NextTokenAR(AARConfig.preset("d4"), SAT(SATConfig.preset("tiny"))).eval()
    >>> model.generate(torch.randn(1, 512), seed=0).audio.shape
    torch.Size([1, 1, 24000])
    """

    kind = "aar-next-token"

    def __init__(self, config: AARConfig, tokenizer: SAT):
        super().__init__(config, tokenizer)
        if self.start_pos.shape[1] != 1:  # one start slot, whatever the first scale's size
            self.start_pos = nn.Parameter(torch.empty(1, 1, self.config.width))
            nn.init.trunc_normal_(self.start_pos, std=(1.0 / self.config.width / 3.0) ** 0.5)
        causal = torch.ones(self.seq_len, self.seq_len, dtype=torch.bool).tril()
        self.register_buffer("attn_mask", causal, persistent=False)

    @property
    def num_steps(self) -> int:
        """Autoregressive steps per clip: one per token."""
        return self.seq_len

    def codebook_table(self) -> torch.Tensor:
        """Every scale's codebook stacked: ``Tensor[K x V x latent_dim]`` (float32, frozen)."""
        return torch.stack([book.embed for book in self.tokenizer.quantizer.codebooks])

    def token_inputs(self, codes: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Embedded tokens ``[B x n x C]`` of the first ``n`` positions, ``codes``: ``LongTensor[B x n]``."""
        table = self.codebook_table() if table is None else table
        vectors = table[self.level_index[: codes.shape[1]], codes]  # [B x n x latent_dim]
        return self.word_embed(vectors.to(self.dtype))

    def forward(self, cond: torch.Tensor | None, codes: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``Tensor[B x L x V]`` (float32); position ``i`` predicts token ``i``
        of the flat scale-ordered sequence from tokens ``< i``. Arguments as :meth:`AAR.forward`."""
        flat = torch.cat(self.split_codes(codes), dim=1)
        return self._teacher_forced(cond, flat.shape[0], self.token_inputs(flat[:, :-1]))

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
        """Sample clips one token per step with a key/value cache; arguments and result as
        :meth:`AAR.generate` (guidance halves batched, skipped when ``cfg == 0`` or unconditional)."""
        batch, guided, cond_bc, generator = self._prepare_generation(cond, cfg, seed, num_samples, cfg_schedule)
        rows = cond_bc.shape[0]
        modulations = [block.modulation(cond_bc) for block in self.blocks]
        head_modulation = self.head.modulation(cond_bc)
        caches = [
            KVCache(rows, self.config.num_heads, self.seq_len, self.config.head_dim, self.device, cond_bc.dtype)
            for _ in self.blocks
        ]
        table = self.codebook_table()
        level_pos = self.level_positions()
        levels = self.level_index.tolist()
        strengths = [guidance_ramp(cfg, k, self.num_scales, cfg_schedule) for k in levels]
        tokens = torch.empty(batch, self.seq_len, dtype=torch.long, device=self.device)

        x = cond_bc[:, None] + self.start_pos + level_pos[:, :1]
        for i in range(self.seq_len):
            for block, modulation, cache in zip(self.blocks, modulations, caches):
                x = block(x, modulation, cache=cache)
            logits = self.head(x, head_modulation).float()
            if guided:
                logits = guided_logits(logits[:batch], logits[batch:], strengths[i])
            idx = sample_tokens(logits, top_k, top_p, generator)  # [B x 1]
            tokens[:, i : i + 1] = idx
            if i + 1 < self.seq_len:
                x = self.word_embed(F.embedding(idx, table[levels[i]]).to(self.dtype)) + level_pos[:, i + 1 : i + 2]
                if guided:
                    x = x.repeat(2, 1, 1)
        codes = list(tokens.split(self.config.scales, dim=1))
        audio = self.tokenizer.decode(codes)
        return Generation(codes=codes, audio=audio, sample_rate=self.tokenizer.sample_rate)

    @classmethod
    def from_pretrained(cls, path, tokenizer=None, device=None) -> "NextTokenAR":
        """Load a model saved by :meth:`save_pretrained` (arguments as :meth:`AAR.from_pretrained`;
        the authors released no next-token model, so only our folder format is read)."""
        if not is_folder_checkpoint(path):
            raise CheckpointError(f"{path}: not a model folder (a next-token model is saved with save_pretrained)")
        return super().from_pretrained(path, tokenizer, device)
