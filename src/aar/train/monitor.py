"""What a run shows and records: a tqdm bar (loss, samples/s) and TensorBoard scalars, audio
examples and spectrogram images. Only the main process shows or writes anything."""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger("aar.train")

# Anchor colours of a dark-to-bright colour map (black, purple, orange, pale yellow).
_COLORS = np.array([[0, 0, 4], [80, 18, 123], [183, 55, 121], [252, 137, 97], [252, 253, 191]], np.float32) / 255.0


def colorize(image: np.ndarray) -> np.ndarray:
    """``[H x W]`` values -> ``[3 x H x W]`` float RGB in [0, 1], low values dark, row 0 at the bottom."""
    lo, hi = np.percentile(image, 1), np.percentile(image, 99.5)
    x = np.clip((image - lo) / max(hi - lo, 1e-8), 0, 1)[::-1]
    pos = x * (len(_COLORS) - 1)
    i = np.minimum(pos.astype(int), len(_COLORS) - 2)
    frac = (pos - i)[..., None]
    rgb = _COLORS[i] * (1 - frac) + _COLORS[i + 1] * frac
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


class Monitor:
    """Progress bar + TensorBoard writer. ``enabled=False`` (other ranks) makes every call a no-op."""

    def __init__(self, run_dir: str | Path, total_steps: int, start_step: int = 0, enabled: bool = True,
                 tensorboard: bool = True, window: int = 20):
        self.enabled = enabled
        self.writer = None
        self.bar = None
        self._times: deque = deque(maxlen=window + 1)
        self._samples: deque = deque(maxlen=window + 1)
        if not enabled:
            return
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed (pip install 'aar-audio[train]'): no TensorBoard logs")
            else:
                self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start_step or None)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        self._times.append(time.perf_counter())
        self._samples.append(0)

    def throughput(self) -> float:
        """Samples per second over the last steps (all processes together)."""
        if len(self._times) < 2:
            return 0.0
        return (self._samples[-1] - self._samples[0]) / max(self._times[-1] - self._times[0], 1e-9)

    def step(self, step: int, samples_seen: int, loss: float, log_scalars: dict[str, float] | None = None):
        """After optimisation ``step`` (1-based), ``samples_seen`` in total since this process started."""
        if not self.enabled:
            return
        self._times.append(time.perf_counter())
        self._samples.append(samples_seen)
        rate = self.throughput()
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", samples_per_s=f"{rate:.2f}", refresh=False)
        if log_scalars is not None:
            self.scalars(step, {**log_scalars, "train/samples_per_s": rate})

    def scalars(self, step: int, values: dict[str, float]):
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def audio(self, step: int, tag: str, wav: torch.Tensor, sample_rate: int):
        """``wav``: ``Tensor[T]`` or ``[1 x T]``."""
        if self.writer is not None:
            self.writer.add_audio(tag, wav.detach().float().cpu().reshape(-1).clamp(-1, 1), step, sample_rate=sample_rate)

    def image(self, step: int, tag: str, values: torch.Tensor):
        """A ``[H x W]`` map (e.g. a log-mel spectrogram) as a colour image."""
        if self.writer is not None:
            self.writer.add_image(tag, colorize(values.detach().float().cpu().numpy()), step)

    def write(self, message: str):
        if self.enabled:
            tqdm.write(message)

    def flush(self):
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
