"""VGGish (Hershey et al. 2017), the embedding network of the standard FAD.

Front end (the published ``vggish_input`` conventions): 16 kHz mono; 25 ms frames (400 samples)
every 10 ms (160), periodic Hann window, 512-point FFT magnitude; 64 mel bands between 125 and
7500 Hz on the HTK mel scale (``1127 ln(1 + f / 700)``) with triangles laid out on the *mel* axis
and no area normalisation, the DC bin left out; ``log(mel + 0.01)``; non-overlapping examples of
96 frames (0.96 s). Clips shorter than one example are zero-padded to one.

Network: four VGG stages (3x3 convolutions with ReLU, 2x2 max pooling) to ``[512 x 6 x 4]``,
flattened in (time, frequency, channel) order, then 4096-4096-128 fully connected layers, a ReLU
after the first two. The embedding is the 128-d output of the last layer *before* torchvggish's
final ReLU and without the PCA whitening and 8-bit quantisation of the released AudioSet
features: what the FAD tool-chains built on torchvggish compute by default (audioldm_eval,
frechet_audio_distance and fadtk all build ``vggish(postprocess=False)`` and drop the last ReLU,
``use_activation=False``), and the ``embedding`` tensor of the original TensorFlow VGGish.
Weights: ``vggish-10086976.pth`` of torchvggish (keys ``features.{0,3,6,8,11,13}.*`` and
``embeddings.{0,2,4}.*``; the dropped ReLU has no weights).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aar.audio.spectral import stft
from aar.metrics.backbones.base import Backbone, BackboneOutput, load_strict, read_torch_file

SAMPLE_RATE = 16_000
WINDOW = 400
HOP = 160
N_FFT = 512
N_MELS = 64
F_MIN, F_MAX = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
MIN_SAMPLES = WINDOW + (EXAMPLE_FRAMES - 1) * HOP


def vggish_mel_weights() -> torch.Tensor:
    """VGGish's mel matrix, ``Tensor[257 x 64]`` (FFT bin x band).

    The triangles are linear in mel, not in Hz, which is why this is not
    :func:`aar.audio.spectral.mel_filterbank` (Hz-linear triangles: up to 0.004 off on a peak
    of 1, enough to move FAD values).
    """
    def to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)

    bins_mel = to_mel(np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1))
    edges = np.linspace(to_mel(F_MIN), to_mel(F_MAX), N_MELS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return torch.from_numpy(weights.astype(np.float32))


def vggish_examples(wav: torch.Tensor, mel_weights: torch.Tensor) -> torch.Tensor:
    """Log-mel examples of 16 kHz audio ``Tensor[B x T]`` -> ``Tensor[B x N x 96 x 64]`` (N >= 1)."""
    if wav.shape[-1] < MIN_SAMPLES:
        wav = F.pad(wav, (0, MIN_SAMPLES - wav.shape[-1]))
    # torch centres the 400-sample window inside each 512-sample frame; padding by that offset makes
    # frame i cover samples [160 i, 160 i + 400), as VGGish frames do (magnitudes are then identical).
    offset = (N_FFT - WINDOW) // 2
    padded = F.pad(wav, (offset, offset))
    magnitude = stft(padded, n_fft=N_FFT, hop_length=HOP, win_length=WINDOW, center=False).abs()
    log_mel = torch.log(torch.matmul(magnitude.transpose(1, 2), mel_weights) + LOG_OFFSET)
    count = log_mel.shape[1] // EXAMPLE_FRAMES
    return log_mel[:, : count * EXAMPLE_FRAMES].reshape(wav.shape[0], count, EXAMPLE_FRAMES, N_MELS)


class VGGish(Backbone):
    """VGGish embeddings: ``forward(Tensor[B x T] at 16 kHz)`` -> ``embeddings`` ``[B x N x 128]``, one per 0.96 s."""

    name = "vggish"
    sample_rate = SAMPLE_RATE
    embedding_dim = 128

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for stage in ((64,), (128,), (256, 256), (512, 512)):
            for width in stage:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, self.embedding_dim),
        )
        self.register_buffer("mel_weights", vggish_mel_weights(), persistent=False)

    def embed_examples(self, examples: torch.Tensor) -> torch.Tensor:
        """``Tensor[M x 96 x 64]`` log-mel examples -> ``Tensor[M x 128]``."""
        x = self.features(examples.unsqueeze(1))
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.embeddings(x)

    def forward(self, wav: torch.Tensor) -> BackboneOutput:
        examples = vggish_examples(wav.float(), self.mel_weights)
        batch, count = examples.shape[:2]
        embeddings = self.embed_examples(examples.flatten(0, 1))
        return BackboneOutput(embeddings=embeddings.reshape(batch, count, self.embedding_dim))

    @classmethod
    def from_weights(cls, path) -> "VGGish":
        """Load a torchvggish-layout state dict (``vggish-10086976.pth``)."""
        state = read_torch_file(path, "VGGish")
        model = cls()
        load_strict(model, state, path, "VGGish (torchvggish layout)")
        model.weights = str(path)
        return model.eval()
