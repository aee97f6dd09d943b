"""The guidance sweep's class probe separates separable classes and gives confident logits."""

from __future__ import annotations

import numpy as np

from aar.experiments.probe import ClassProbe
from aar.metrics.classifier import inception_score


def test_probe_learns_separable_classes():
    rng = np.random.default_rng(0)
    centres = {"a": np.zeros(8), "b": np.full(8, 3.0), "c": np.r_[np.full(4, -3.0), np.zeros(4)]}
    names, feats = [], []
    for label, centre in centres.items():
        for i in range(20):
            names.append(f"{label}/{i:03d}")
            feats.append(centre + rng.standard_normal(8) * 0.5)
    feats = np.stack(feats)
    probe = ClassProbe(list(centres)).fit(names, feats)
    assert probe.accuracy(names, feats) == 1.0
    # confident, balanced predictions: ISc near the number of classes; one repeated clip: ISc 1
    assert inception_score(probe.logits(feats), splits=1)[0] > 2.2
    assert abs(inception_score(probe.logits(np.repeat(feats[:1], 10, 0)), splits=1)[0] - 1.0) < 1e-6
