"""Multi-scale residual quantization (MSRQ) with EMA codebooks.

Layout: latents are ``Tensor[B x C x T]`` (channels first), ``T`` the latent length (75 for
1 s). Scale ``k`` holds ``s_k`` tokens; its codes are ``LongTensor[B x s_k]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from aar.tokenizer.config import SATConfig


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def area_downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """``Tensor[B x C x T]`` -> ``Tensor[B x C x size]`` by area (adaptive average) pooling."""
    return x if x.shape[-1] == size else F.interpolate(x, size=size, mode="area")


def linear_upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """``Tensor[B x C x s]`` -> ``Tensor[B x C x size]`` by linear interpolation (half-pixel centres)."""
    return x if x.shape[-1] == size else F.interpolate(x, size=size, mode="linear", align_corners=False)


class Phi(nn.Conv1d):
    """The upsampling function: ``x * (1 - r) + conv(x) * r`` with a same-length Conv1d."""

    bias: torch.Tensor  # always made (nn.Conv1d's default)

    def __init__(self, dim: int, kernel_size: int, ratio: float):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2)
        self.ratio = ratio

    def forward(self, x):
        return x * (1.0 - self.ratio) + super().forward(x) * self.ratio


def kmeans(samples: torch.Tensor, num_clusters: int, iters: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd k-means on ``Tensor[N x D]``; empty clusters keep their previous centre.
    Returns (centres ``[K x D]``, counts ``[K]``)."""
    n = samples.shape[0]
    if n >= num_clusters:
        idx = torch.randperm(n, device=samples.device, generator=generator)[:num_clusters]
    else:
        idx = torch.randint(0, n, (num_clusters,), device=samples.device, generator=generator)
    means = samples[idx].clone()
    counts = torch.zeros(num_clusters, device=samples.device, dtype=samples.dtype)
    for _ in range(iters):
        assign = torch.cdist(samples, means).argmin(dim=1)
        counts = torch.bincount(assign, minlength=num_clusters).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, assign, samples)
        means = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], means)
    return means, counts


class EMACodebook(nn.Module):
    """A codebook of ``size`` vectors of ``dim``, trained by exponential moving averages.

    Buffers (all persistent): ``embed`` [size x dim], ``embed_avg`` [size x dim],
    ``cluster_size`` [size], ``initialized`` [1].
    """

    initialized: torch.Tensor
    cluster_size: torch.Tensor
    embed: torch.Tensor
    embed_avg: torch.Tensor
    _norms: tuple[tuple, torch.Tensor] | None = None  # (embed's version key, |e|^2), see _squared_norms

    def __init__(self, size: int, dim: int, decay: float, epsilon: float, kmeans_iters: int, dead_threshold: float):
        super().__init__()
        self.size, self.dim = size, dim
        self.decay, self.epsilon = decay, epsilon
        self.kmeans_iters, self.dead_threshold = kmeans_iters, dead_threshold
        self.register_buffer("initialized", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))

    def _squared_norms(self) -> torch.Tensor:
        key = (self.embed._version, self.embed.data_ptr(), self.embed.device)
        if self._norms is None or self._norms[0] != key:
            self._norms = (key, self.embed.pow(2).sum(1))
        return self._norms[1]

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Indices of the nearest codes (Euclidean) for ``Tensor[N x dim]`` -> ``LongTensor[N]``.

        ``|x|^2`` is the same for every code, so the argmin only needs ``|e|^2 - 2 x.e``."""
        x = x.float()
        return torch.addmm(self._squared_norms()[None], x, self.embed.t(), alpha=-2.0).argmin(dim=1)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.embed)

    @torch.no_grad()
    def initialize(self, samples: torch.Tensor):
        """k-means initialisation from ``Tensor[N x dim]``; in DDP rank 0's result is broadcast."""
        means, counts = kmeans(samples.float(), self.size, self.kmeans_iters)
        if _distributed():
            dist.broadcast(means, 0)
            dist.broadcast(counts, 0)
        self.embed.copy_(means)
        self.embed_avg.copy_(means)
        self.cluster_size.copy_(counts)
        self.initialized.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, samples: torch.Tensor, idx: torch.Tensor):
        """One EMA step from ``samples`` [N x dim] assigned to ``idx`` [N]; statistics are summed
        over DDP ranks so every rank holds the same codebook. Codes whose EMA count falls below
        ``dead_threshold`` are re-seeded from the batch (taking effect immediately). A batch whose
        latents are not all finite leaves the codebook as it was (the training step is skipped)."""
        samples = samples.float()
        counts = torch.bincount(idx, minlength=self.size).float()
        sums = torch.zeros(self.size, self.dim, device=samples.device).index_add_(0, idx, samples)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        if not bool(torch.isfinite(sums).all()):
            return  # a batch with NaN/Inf latents would poison the codebook for good: the step is skipped
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.size * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        if self.dead_threshold > 0:
            dead = self.cluster_size < self.dead_threshold
            if bool(dead.any()):
                pick = torch.randint(0, samples.shape[0], (self.size,), device=samples.device)
                fresh = samples[pick]
                if _distributed():
                    dist.broadcast(fresh, 0)
                self.embed[dead] = fresh[dead]
                self.embed_avg[dead] = fresh[dead] * self.dead_threshold
                self.cluster_size[dead] = self.dead_threshold


class MultiScaleResidualQuantizer(nn.Module):
    """Projects the encoder latent to ``latent_dim``, quantizes it scale by scale (coarse to
    fine) and projects back. See the SPEC's "Encoding" steps."""

    # nn.ModuleLists, typed by what they hold (indexing a ModuleList gives a plain Module)
    phi: Sequence[Phi]
    codebooks: Sequence[EMACodebook]
    project_in: nn.Linear | None
    project_out: nn.Linear | None

    def __init__(self, cfg: SATConfig):
        super().__init__()
        self.cfg = cfg
        self.scales = list(cfg.scales)
        self.length = cfg.latent_length
        if cfg.dimension != cfg.latent_dim:
            self.project_in = nn.Linear(cfg.dimension, cfg.latent_dim)
            self.project_out = nn.Linear(cfg.latent_dim, cfg.dimension)
        else:
            self.project_in = self.project_out = None
        self.phi = nn.ModuleList(  # type: ignore[assignment]  # a ModuleList of Phi
            Phi(cfg.latent_dim, cfg.phi_kernel, cfg.phi_ratio) for _ in range(cfg.num_phi))
        self._phi_of_scale = [cfg.phi_for_scale(k) for k in range(cfg.num_scales)]
        self.codebooks = nn.ModuleList(  # type: ignore[assignment]  # a ModuleList of EMACodebook
            EMACodebook(
                cfg.codebook_size,
                cfg.latent_dim,
                cfg.ema_decay,
                cfg.ema_epsilon,
                cfg.kmeans_iters,
                cfg.dead_code_threshold,
            )
            for _ in range(cfg.num_scales)
        )

    # projections ---------------------------------------------------------------------
    def _project(self, layer: nn.Linear | None, x: torch.Tensor) -> torch.Tensor:
        if layer is None:
            return x
        return layer(x.transpose(1, 2)).transpose(1, 2)

    def project_latent(self, f: torch.Tensor) -> torch.Tensor:
        """Encoder output ``[B x dimension x T]`` -> quantizer space ``[B x latent_dim x T]``."""
        return self._project(self.project_in, f)

    def unproject_latent(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Quantizer space ``[B x latent_dim x T]`` -> decoder input ``[B x dimension x T]``."""
        return self._project(self.project_out, f_hat)

    # per-scale pieces ------------------------------------------------------------------
    def apply_phi(self, k: int, x: torch.Tensor) -> torch.Tensor:
        j = self._phi_of_scale[k]
        return x if j is None else self.phi[j](x)

    def code_embedding(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of scale ``k``: ``LongTensor[B x s_k]`` -> ``Tensor[B x latent_dim x s_k]``."""
        return self.codebooks[k].lookup(codes).transpose(1, 2)

    def scale_contribution(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """What scale ``k`` adds to the quantized latent: ``phi_k(upsample(e_k[codes]))``, ``[B x latent_dim x T]``."""
        return self.apply_phi(k, linear_upsample(self.code_embedding(k, codes), self.length))

    def next_scale_input(self, k: int, f_hat: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale ``k``'s codes to the running sum ``f_hat`` [B x latent_dim x T] (returned, updated
        out of place) and give the next scale's teacher-forcing input ``[B x s_{k+1} x latent_dim]``
        (for the last scale: ``f_hat`` itself, transposed)."""
        f_hat = f_hat + self.scale_contribution(k, codes)
        nxt = self.scales[k + 1] if k + 1 < len(self.scales) else self.length
        return f_hat, area_downsample(f_hat, nxt).transpose(1, 2)

    def teacher_forcing_inputs(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Inputs of scales 2..K for teacher forcing: ``[B x s_{k+1} x latent_dim]`` for k = 0..K-2,
        the running latent sum area-downsampled to the next scale (computed in float32)."""
        b = codes[0].shape[0]
        f_hat = self.codebooks[0].embed.new_zeros(b, self.cfg.latent_dim, self.length, dtype=torch.float32)
        out = []
        for k in range(len(self.scales) - 1):
            f_hat, nxt = self.next_scale_input(k, f_hat, codes[k])
            out.append(nxt)
        return out

    # encode / decode --------------------------------------------------------------------
    def _check_length(self, x: torch.Tensor):
        if x.shape[-1] != self.length:
            raise ValueError(f"the quantizer takes exactly {self.length} latent frames, got {x.shape[-1]}")

    def encode(self, f: torch.Tensor, num_scales: int | None = None) -> list[torch.Tensor]:
        """Encoder latent ``[B x dimension x T]`` -> codes, one ``LongTensor[B x s_k]`` per scale."""
        self._check_length(f)
        residual = self.project_latent(f)
        codes = []
        for k, size in enumerate(self.scales[:num_scales]):
            z = area_downsample(residual, size)
            b = z.shape[0]
            idx = self.codebooks[k].nearest(z.transpose(1, 2).reshape(-1, z.shape[1])).view(b, size)
            codes.append(idx)
            residual = residual - self.scale_contribution(k, idx)
        return codes

    def quantized_sum(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Sum of the scale contributions of ``codes`` (any prefix of the scales), ``[B x latent_dim x T]``."""
        if not codes:
            raise ValueError("codes must hold at least one scale")
        if len(codes) > len(self.scales):
            raise ValueError(f"got codes for {len(codes)} scales, the tokenizer has {len(self.scales)}")
        for k, c in enumerate(codes):
            if c.dim() != 2 or c.shape[1] != self.scales[k]:
                raise ValueError(f"codes of scale {k} must be [B x {self.scales[k]}], got {tuple(c.shape)}")
        if torch.is_grad_enabled() or self.cfg.phi == "none":
            f_hat = self.scale_contribution(0, codes[0])
            for k in range(1, len(codes)):
                f_hat = f_hat + self.scale_contribution(k, codes[k])
            return f_hat
        # phi is affine, so scales sharing a conv are summed first: phi(a) + phi(b) = phi(a + b) + r * bias
        groups: dict[int | None, list[torch.Tensor]] = {}
        for k, c in enumerate(codes):
            groups.setdefault(self._phi_of_scale[k], []).append(linear_upsample(self.code_embedding(k, c), self.length))
        terms = []
        for j, parts in groups.items():
            assert j is not None  # phi is on here (phi == "none" returned above)
            phi = self.phi[j]
            term = phi(torch.stack(parts).sum(0))
            if len(parts) > 1:
                term = term + (len(parts) - 1) * phi.ratio * phi.bias[:, None]
            terms.append(term)
        return sum(terms[1:], terms[0])  # the terms in the order the loop made them

    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Codes (any prefix of the scales) -> decoder input ``[B x dimension x T]``."""
        return self.unproject_latent(self.quantized_sum(codes))

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Quantize ``[B x dimension x T]``. Returns (quantized ``[B x dimension x T]``, codes, commitment loss).

        In training mode codebooks are k-means initialised on first use and updated by EMA; the
        loss is ``mean_k mse(q_k.detach(), r_k) + mse(q_k, r_k.detach())`` (the second term trains
        phi), and the output passes gradients straight through to the encoder latent."""
        self._check_length(f)
        x = self.project_latent(f)
        residual = x
        f_hat = torch.zeros_like(x)
        codes, losses = [], []
        for k, size in enumerate(self.scales):
            book = self.codebooks[k]
            z = area_downsample(residual, size)
            flat = z.detach().transpose(1, 2).reshape(-1, z.shape[1])
            if self.training and not bool(book.initialized):
                book.initialize(flat)
            idx = book.nearest(flat).view(z.shape[0], size)
            q = self.apply_phi(k, linear_upsample(book.lookup(idx).transpose(1, 2), self.length))
            if self.training:
                book.ema_update(flat, idx.flatten())
                losses.append(F.mse_loss(q.detach(), residual) + F.mse_loss(q, residual.detach()))
            residual = residual - q.detach()
            f_hat = f_hat + q
            codes.append(idx)
        if self.training:
            # straight-through: values of f_hat, gradient of identity to the encoder latent;
            # phi still gets its gradient from the commitment term.
            f_hat = x + (f_hat - x).detach()
            loss = torch.stack(losses).mean()
        else:
            loss = x.new_zeros(())
        return self.unproject_latent(f_hat), codes, loss
