"""Inception Score and KL divergence over the 527-class AudioSet outputs of a classifier.

Conventions are those of the AudioSet evaluation tool-chain used by text-to-audio papers
(audioldm_eval, on PANNs CNN14 logits):

- **ISc**: softmax over the logits of the generated clips, shuffled with a fixed seed (2020) and
  cut into 10 splits; per split ``exp(mean_i KL(p_i || mean_j p_j))``; reported as the mean and the
  (population) standard deviation over splits.
- **KL**: for each generated clip and the reference clip of the same name,
  ``KL(p_ref || p_gen) = sum_c p_ref,c (log p_ref,c - log(p_gen,c + 1e-6))``, averaged over pairs.
  The *softmax* variant (``p = softmax(logits)``, the formulation of AudioGen) is the "KL" column
  of the paper-style tables; the *sigmoid* variant (``p = sigmoid(logits)`` per class, the same
  sum, not a normalised distribution) is reported beside it as ``kl_sigmoid``.
"""

from __future__ import annotations

import numpy as np
import torch

from aar.metrics.errors import MetricError

ISC_SPLITS = 10
ISC_SEED = 2020
KL_EPS = 1e-6
KL_ACTIVATIONS = ("softmax", "sigmoid")


def inception_score(
    logits: torch.Tensor, splits: int = ISC_SPLITS, shuffle_seed: int | None = ISC_SEED
) -> tuple[float, float]:
    """Inception Score of classifier ``logits`` ``[N x C]``: ``(mean, std)`` over ``splits``.

    ``shuffle_seed=None`` keeps the given order.
    """
    logits = torch.as_tensor(logits).detach().cpu().double()
    if logits.dim() != 2:
        raise MetricError(f"logits must be [N x C], got shape {tuple(logits.shape)}")
    count = logits.shape[0]
    if count < splits:
        raise MetricError(f"an Inception Score over {splits} splits needs at least {splits} clips, got {count}")
    if shuffle_seed is not None:
        logits = logits[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(count))]
    probs, log_probs = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = slice(i * count // splits, (i + 1) * count // splits)
        marginal = probs[part].mean(dim=0, keepdim=True)
        kl = (probs[part] * (log_probs[part] - marginal.log())).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def kl_divergence(
    generated_logits: torch.Tensor,
    reference_logits: torch.Tensor,
    activation: str = "softmax",
    eps: float = KL_EPS,
) -> torch.Tensor:
    """Per-pair ``KL(p_ref || p_gen)`` from logits ``[N x C]`` (row ``i`` of each is one pair): ``Tensor[N]``.

    ``activation`` is ``"softmax"`` (paper-style "KL") or ``"sigmoid"``; see the module docstring.
    """
    gen = torch.as_tensor(generated_logits).detach().cpu().double()
    ref = torch.as_tensor(reference_logits).detach().cpu().double()
    if gen.shape != ref.shape or gen.dim() != 2:
        raise MetricError(f"paired logits must both be [N x C], got {tuple(gen.shape)} and {tuple(ref.shape)}")
    if activation == "softmax":
        p_ref, p_gen = ref.softmax(dim=1), gen.softmax(dim=1)
    elif activation == "sigmoid":
        p_ref, p_gen = ref.sigmoid(), gen.sigmoid()
    else:
        raise ValueError(f"activation must be one of {KL_ACTIVATIONS}, got {activation!r}")
    return (torch.xlogy(p_ref, p_ref) - p_ref * (p_gen + eps).log()).sum(dim=1)
