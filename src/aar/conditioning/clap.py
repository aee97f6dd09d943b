"""CLAP conditioning: audio and text embeddings from one ``transformers`` ``ClapModel``.

The paper conditions on the 512-d CLAP *audio* embedding (``laion/larger_clap_general``) of
each training clip, computed from the clip resampled to 48 kHz. CLAP is trained so that text
and audio land in the same unit-norm space, so a model trained on audio embeddings can also be
prompted with a *text* embedding; expect it to follow text less closely than audio prompts,
since it never saw text embeddings during training.

The model is loaded from a local folder (download it once, e.g.
``huggingface-cli download laion/larger_clap_general --local-dir clap``); nothing is fetched
at run time. Requires the ``clap`` extra (``pip install aar-audio[clap]``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aar.audio import load_audio, resample
from aar.checkpoint import CheckpointError
from aar.conditioning.base import Conditioner

CLAP_SAMPLE_RATE = 48_000


def _features(output) -> torch.Tensor:
    # transformers >= 5 returns a model output whose pooler_output holds the normalised
    # projection; older versions return that tensor directly.
    return output.pooler_output if hasattr(output, "pooler_output") else output


class ClapEmbedder:
    """A ``ClapModel`` and its processor loaded from a local folder, in eval mode.

    >>> clap = ClapEmbedder("path/to/larger_clap_general")          # doctest: +SKIP
    >>> clap.embed_text(["a dog barks"]).shape                       # doctest: +SKIP
    torch.Size([1, 512])
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu", batch_size: int = 16):
        try:
            from transformers import ClapModel, ClapProcessor
        except ImportError:
            raise ImportError("CLAP conditioning needs transformers: pip install 'aar-audio[clap]'") from None
        path = Path(path)
        if not path.is_dir() or not (path / "config.json").is_file():
            raise CheckpointError(f"{path}: not a CLAP model folder (expected config.json and weights from ClapModel.save_pretrained)")
        try:
            self.processor = ClapProcessor.from_pretrained(str(path), local_files_only=True)
            self.model = ClapModel.from_pretrained(str(path), local_files_only=True).eval().to(device)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: cannot load the CLAP model or its processor ({exc})") from None
        self.model.requires_grad_(False)
        self.path = path
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        """Size of the embeddings (512 for ``laion/larger_clap_general``)."""
        return int(self.model.config.projection_dim)

    @torch.inference_mode()
    def embed_audio(self, clips: Sequence[torch.Tensor | np.ndarray], sample_rate: int) -> torch.Tensor:
        """Mono clips (each ``[T]`` or ``[1 x T]``, any length, at ``sample_rate``) -> unit-norm
        audio embeddings ``Tensor[B x dim]`` (float32, on CPU). Clips are resampled to 48 kHz;
        the processor pads or crops them to CLAP's 10 s input."""
        arrays = []
        for clip in clips:
            clip = clip.detach().float().cpu().numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip, np.float32)
            arrays.append(resample(clip.reshape(-1), sample_rate, CLAP_SAMPLE_RATE))
        out = []
        for i in range(0, len(arrays), self.batch_size):
            inputs = self.processor.feature_extractor(
                arrays[i : i + self.batch_size], sampling_rate=CLAP_SAMPLE_RATE, return_tensors="pt"
            )
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            out.append(_features(self.model.get_audio_features(**inputs)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def embed_files(self, paths: Sequence[str | os.PathLike]) -> torch.Tensor:
        """Audio files -> ``Tensor[B x dim]``, each read directly at 48 kHz."""
        clips = [load_audio(p, sample_rate=CLAP_SAMPLE_RATE)[0] for p in paths]
        return self.embed_audio(clips, CLAP_SAMPLE_RATE)

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> unit-norm text embeddings ``Tensor[B x dim]`` (float32, on CPU)."""
        texts = list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError(f"texts must be non-empty strings, got {texts!r}")
        out = []
        for i in range(0, len(texts), self.batch_size):
            inputs = self.processor.tokenizer(texts[i : i + self.batch_size], padding=True, truncation=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            out.append(_features(self.model.get_text_features(**inputs)).float().cpu())
        return torch.cat(out)


class ClapAudioConditioner(Conditioner):
    """Audio prompts -> CLAP audio embeddings ``Tensor[B x 512]`` (what the paper trains on).

    Prompts are audio file paths, or ``Tensor[B x 1 x T]`` / a list of ``[T]`` clips at
    ``sample_rate``.
    """

    condition = "clap"

    def __init__(self, embedder: ClapEmbedder, sample_rate: int = 24_000):
        self.embedder = embedder
        self.sample_rate = sample_rate

    def __call__(self, prompts) -> torch.Tensor:
        if isinstance(prompts, (str, os.PathLike)):
            prompts = [prompts]
        if isinstance(prompts, torch.Tensor):
            if prompts.dim() != 3 or prompts.shape[1] != 1:
                raise ValueError(f"audio prompts must be [B x 1 x T], got shape {tuple(prompts.shape)}")
            return self.embedder.embed_audio(list(prompts[:, 0]), self.sample_rate)
        prompts = list(prompts)
        if prompts and all(isinstance(p, (str, os.PathLike)) for p in prompts):
            return self.embedder.embed_files(prompts)
        return self.embedder.embed_audio(prompts, self.sample_rate)


class ClapTextConditioner(Conditioner):
    """Text prompts -> CLAP text embeddings ``Tensor[B x 512]``, in the space the audio
    embeddings live in (see the module docstring for the caveat)."""

    condition = "clap"

    def __init__(self, embedder: ClapEmbedder):
        self.embedder = embedder

    def __call__(self, prompts: Sequence[str] | str) -> torch.Tensor:
        return self.embedder.embed_text([prompts] if isinstance(prompts, str) else prompts)
