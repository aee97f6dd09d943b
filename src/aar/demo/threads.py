"""Choosing the number of CPU threads for the demo.

On a quiet machine several intra-op threads are faster; on a machine whose cores are busy with
other work, threads that wait for each other can make every step several times slower than
one thread does. The demo times a small training-like workload both ways and keeps the faster.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def _workload() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(1, 8, 7, padding=3), nn.ELU(),
        nn.Conv1d(8, 16, 4, stride=2, padding=1), nn.ELU(),
        nn.Conv1d(16, 32, 8, stride=4, padding=2), nn.ELU(),
        nn.Conv1d(32, 32, 3, padding=1),
    )
    return net, torch.randn(4, 1, 24_000)


def _time_once(net: nn.Module, x: torch.Tensor) -> float:
    began = time.perf_counter()
    net(x).square().mean().backward()
    return time.perf_counter() - began


def pick_threads(candidates: tuple[int, ...] | None = None, repeats: int = 5) -> tuple[int, dict[int, float]]:
    """Set torch's intra-op threads to whichever of ``candidates`` (default: 1 and the current
    count) runs a small convolution forward + backward fastest (median of ``repeats``, the
    candidates interleaved); returns (chosen, median seconds per candidate)."""
    current = torch.get_num_threads()
    candidates = tuple(dict.fromkeys(candidates or (1, current)))
    if len(candidates) == 1:
        return candidates[0], {}
    net, x = _workload()
    times: dict[int, list[float]] = {n: [] for n in candidates}
    for i in range(repeats + 1):
        for n in candidates:
            torch.set_num_threads(n)
            seconds = _time_once(net, x)
            if i:  # the first round warms up
                times[n].append(seconds)
    medians = {n: statistics.median(t) for n, t in times.items()}
    best = min(medians, key=medians.get)
    torch.set_num_threads(best)
    return best, medians
