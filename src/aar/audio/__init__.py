"""Audio I/O and spectral transforms shared by every part of the project."""

from aar.audio.io import (
    AUDIO_EXTENSIONS,
    AudioError,
    NonFiniteAudioError,
    list_audio_files,
    load_audio,
    resample,
    save_audio,
)
from aar.audio.spectral import MelSpectrogram, mel_filterbank, stft

__all__ = [
    "AudioError",
    "NonFiniteAudioError",
    "AUDIO_EXTENSIONS",
    "list_audio_files",
    "load_audio",
    "resample",
    "save_audio",
    "MelSpectrogram",
    "mel_filterbank",
    "stft",
]
