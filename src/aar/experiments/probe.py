"""A class probe for the guidance sweep when no AudioSet classifier (PANNs) weights are at hand:
multinomial logistic regression on clip embeddings of the ``mel`` backbone (frame embeddings
averaged per clip, standardised), trained on the labelled training clips of the corpus.

Its logits stand in for the classifier's in ISc and KL, so the numbers measure "how clearly and
how correctly the generated clips fall into the corpus's own classes", not the paper's AudioSet
ISc/KL, and are comparable only between runs that share the probe's training data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aar.metrics import embed_clips
from aar.metrics.clips import collect_clips


def clip_features(folder: Path, backbone) -> tuple[list[str], np.ndarray]:
    """(names ``"<class>/<clip>"``, ``[N x D]`` mean frame embedding per clip) of a class-folder tree."""
    embedded = embed_clips(collect_clips(folder, folder.name), backbone, progress=False)
    return embedded.names, np.stack([e.mean(axis=0) for e in embedded.embeddings])


class ClassProbe:
    """Logistic regression ``[N x D]`` features -> ``[N x C]`` logits over ``class_names``."""

    def __init__(self, class_names: list[str], l2: float = 1e-2):
        self.class_names = list(class_names)
        self.l2 = l2

    def fit(self, names: list[str], features: np.ndarray) -> "ClassProbe":
        labels = torch.tensor([self.class_names.index(n.split("/", 1)[0]) for n in names])
        x = torch.from_numpy(features).double()
        self.mean, self.std = x.mean(0), x.std(0).clamp(min=1e-6)
        x = (x - self.mean) / self.std
        self.linear = torch.nn.Linear(x.shape[1], len(self.class_names)).double()
        opt = torch.optim.LBFGS(self.linear.parameters(), max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.linear(x), labels)
            loss = loss + self.l2 * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def logits(self, features: np.ndarray) -> torch.Tensor:
        x = (torch.from_numpy(features).double() - self.mean) / self.std
        return self.linear(x)

    def accuracy(self, names: list[str], features: np.ndarray) -> float:
        labels = torch.tensor([self.class_names.index(n.split("/", 1)[0]) for n in names])
        return float((self.logits(features).argmax(1) == labels).double().mean())
