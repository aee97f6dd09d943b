"""Audio I/O and spectral transforms shared by every part of the project."""

from aar.audio.io import AudioError, AUDIO_EXTENSIONS, list_audio_files, load_audio, resample, save_audio
from aar.audio.spectral import MelSpectrogram, mel_filterbank, stft

__all__ = [
    "AudioError",
    "AUDIO_EXTENSIONS",
    "list_audio_files",
    "load_audio",
    "resample",
    "save_audio",
    "MelSpectrogram",
    "mel_filterbank",
    "stft",
]
