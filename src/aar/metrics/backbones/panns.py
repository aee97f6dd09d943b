"""PANNs CNN14 (Kong et al. 2020), the AudioSet classifier behind ISc and KL (and a 2048-d FAD).

Front end (``Cnn14_mAP=0.431.pth``, the 32 kHz model): 32 kHz mono; periodic Hann window of
1024 samples, hop 320, centred reflection-padded frames; power spectrogram; 64 Slaney mel bands
(librosa's default, ``htk=False``) between 50 Hz and 14 kHz; ``10 log10(max(mel, 1e-10))``;
BatchNorm over the mel bands (``bn0``). Clips shorter than 0.31 s (the 32 frames the five 2x
poolings need) are zero-padded.

Network: six blocks of two 3x3 convolutions (no bias) with BatchNorm and ReLU, 2x2 average
pooling after blocks 1-5; mean over frequency; max plus mean over time; ``fc1`` with ReLU gives
the 2048-d embedding; ``fc_audioset`` gives the 527 AudioSet logits (the published model applies
a sigmoid to them). The checkpoint is a dict whose ``"model"`` entry holds the weights under
``bn0.*``, ``conv_block{1..6}.{conv1,conv2,bn1,bn2}.*``, ``fc1.*``, ``fc_audioset.*``, plus the
front end as tensors (``spectrogram_extractor.stft.conv_{real,imag}.weight``,
``logmel_extractor.melW``); the front end here is computed with :mod:`aar.audio.spectral`, and
the stored mel matrix is only checked against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aar.audio.spectral import mel_filterbank, stft
from aar.checkpoint import CheckpointError
from aar.metrics.backbones.base import Backbone, BackboneOutput, load_strict, read_torch_file

SAMPLE_RATE = 32_000
WINDOW = 1024
HOP = 320
N_MELS = 64
F_MIN, F_MAX = 50.0, 14_000.0
AMIN = 1e-10
NUM_CLASSES = 527
MIN_FRAMES = 32
FRONT_END_KEYS = (
    "spectrogram_extractor.stft.conv_real.weight",
    "spectrogram_extractor.stft.conv_imag.weight",
    "logmel_extractor.melW",
)


def cnn14_log_mel(wav: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """CNN14 log-mel of 32 kHz audio ``Tensor[B x T]`` -> ``Tensor[B x frames x 64]`` (dB)."""
    min_samples = (MIN_FRAMES - 1) * HOP
    if wav.shape[-1] < min_samples:
        wav = F.pad(wav, (0, min_samples - wav.shape[-1]))
    power = stft(wav, n_fft=WINDOW, hop_length=HOP, center=True, pad_mode="reflect").abs().pow(2)
    mel = torch.matmul(filters, power)
    return 10.0 * torch.log10(mel.clamp(min=AMIN)).transpose(1, 2)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and ReLU, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool) if pool > 1 else x


class Cnn14(Backbone):
    """CNN14: ``forward(Tensor[B x T] at 32 kHz)`` -> ``embeddings`` ``[B x 1 x 2048]``, ``logits`` ``[B x 527]``."""

    name = "panns"
    sample_rate = SAMPLE_RATE
    embedding_dim = 2048
    num_classes = NUM_CLASSES

    def __init__(self):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, NUM_CLASSES)
        self.register_buffer("mel_filters", mel_filterbank(SAMPLE_RATE, WINDOW, N_MELS, F_MIN, F_MAX), persistent=False)

    def forward(self, wav: torch.Tensor) -> BackboneOutput:
        x = cnn14_log_mel(wav.float(), self.mel_filters)  # [B x frames x mels]
        x = self.bn0(x.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2)  # normalise each mel band
        x = x.unsqueeze(1)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=2 if i < 5 else 1)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return BackboneOutput(embeddings=embedding.unsqueeze(1), logits=self.fc_audioset(embedding))

    @classmethod
    def from_weights(cls, path) -> "Cnn14":
        """Load ``Cnn14_mAP=0.431.pth`` (or any file in its layout: ``{"model": state_dict, ...}``)."""
        checkpoint = read_torch_file(path, "PANNs CNN14")
        state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: not a PANNs CNN14 checkpoint (expected a dict with a 'model' entry)")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model = cls()
        stored_mel = state.get("logmel_extractor.melW")
        if stored_mel is not None:
            _check_front_end(stored_mel, model.mel_filters, path)
        state = {k: v for k, v in state.items() if k not in FRONT_END_KEYS}
        load_strict(model, state, path, "PANNs CNN14 (Cnn14_mAP=0.431.pth layout)")
        model.weights = str(path)
        return model.eval()


def _check_front_end(stored: torch.Tensor, ours: torch.Tensor, path) -> None:
    """The checkpoint's mel matrix (``[513 x 64]``) must be the 32 kHz front end computed here."""
    expected = ours.t()
    if tuple(stored.shape) != tuple(expected.shape):
        raise CheckpointError(
            f"{path}: its mel front end is {tuple(stored.shape)}, the 32 kHz CNN14 has {tuple(expected.shape)} "
            "(only Cnn14_mAP=0.431.pth, the 32 kHz model, is supported)"
        )
    error = (stored.float() - expected).abs().max().item()
    if error > 1e-3 * expected.abs().max().item():
        raise CheckpointError(f"{path}: its mel filters differ from the 32 kHz CNN14 front end (max error {error:.3g})")
