"""SAT: the Scale-level Audio Tokenizer (SEANet encoder + multi-scale residual quantizer + decoder)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aar.checkpoint import CheckpointError, check_finite_weights, is_folder_checkpoint, load_folder, save_folder
from aar.tokenizer.config import SATConfig
from aar.tokenizer.quantizer import MultiScaleResidualQuantizer
from aar.tokenizer.seanet import SEANetDecoder, SEANetEncoder


class SAT(nn.Module):
    """Scale-level Audio Tokenizer.

    Audio is ``Tensor[B x 1 x T]`` float at ``config.sample_rate`` (24 kHz). One window
    (``config.window_samples``, 1 s) becomes ``config.num_scales`` code tensors
    ``LongTensor[B x s_k]`` (455 tokens with the paper's schedule).

    >>> sat = SAT(SATConfig.preset("tiny")).eval()
    >>> codes = sat.encode(torch.zeros(2, 1, 24000))
    >>> [c.shape[1] for c in codes][:4]
    [1, 2, 4, 6]
    >>> sat.decode(codes).shape
    torch.Size([2, 1, 24000])
    """

    kind = "sat"
    INFERENCE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

    def __init__(self, config: SATConfig | None = None, inference_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config = config or SATConfig()
        self.encoder = SEANetEncoder(self.config)
        self.decoder = SEANetDecoder(self.config)
        self.quantizer = MultiScaleResidualQuantizer(self.config)
        self.inference_dtype = inference_dtype

    @property
    def inference_dtype(self) -> torch.dtype:
        """dtype of the encoder and decoder at inference (``encode``/``decode``/...). float32 (the
        default) matches the release to 1e-4; bfloat16 is about 1.5x faster on CPUs with AMX or
        AVX512-BF16 and on GPUs, with ~0.5 % relative error on latents and audio. Weights stay
        float32 (reduced-precision copies are cached), and the quantizer always runs in float32."""
        return self._inference_dtype

    @inference_dtype.setter
    def inference_dtype(self, dtype: torch.dtype | str):
        if isinstance(dtype, str):
            names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                     "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
            if dtype not in names:
                raise ValueError(f"unknown inference dtype {dtype!r}; use fp32, bf16 or fp16")
            dtype = names[dtype]
        if dtype not in self.INFERENCE_DTYPES:
            raise ValueError(f"inference dtype must be one of {self.INFERENCE_DTYPES}, got {dtype}")
        self._inference_dtype = dtype

    def _run_encoder(self, wav: torch.Tensor) -> torch.Tensor:
        return self.encoder(wav.to(self._inference_dtype)).float()

    def _run_decoder(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent.to(self._inference_dtype)).float()

    # ---------------------------------------------------------------- properties
    @property
    def scales(self) -> list[int]:
        return list(self.config.scales)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def window_samples(self) -> int:
        return self.config.window_samples

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---------------------------------------------------------------- checks
    def _check_wav(self, wav: torch.Tensor, name: str = "wav", max_len: int | None = None) -> torch.Tensor:
        if not isinstance(wav, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor [B x 1 x T], got {type(wav).__name__}")
        if wav.dim() != 3 or wav.shape[1] != self.config.channels:
            raise ValueError(f"{name} must be [B x {self.config.channels} x T], got shape {tuple(wav.shape)}")
        if wav.shape[-1] == 0:
            raise ValueError(f"{name} is empty (T = 0)")
        if max_len is not None and wav.shape[-1] > max_len:
            raise ValueError(
                f"{name} has {wav.shape[-1]} samples, more than one window ({max_len}); "
                "use encode_long()/decode_long() or reconstruct() for longer audio"
            )
        return wav.to(self.device, torch.float32)

    def _pad_to_window(self, wav: torch.Tensor) -> torch.Tensor:
        return F.pad(wav, (0, self.window_samples - wav.shape[-1])) if wav.shape[-1] < self.window_samples else wav

    # ---------------------------------------------------------------- codec API
    @torch.inference_mode()
    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """Encoder output: ``Tensor[B x 1 x T]`` -> ``Tensor[B x dimension x T / hop]``."""
        return self._run_encoder(self._check_wav(wav))

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, num_scales: int | None = None) -> list[torch.Tensor]:
        """One window of audio ``Tensor[B x 1 x T]`` (T <= window; shorter is zero-padded) ->
        codes, a list of ``LongTensor[B x s_k]`` (coarse to fine; the first ``num_scales`` only if given)."""
        wav = self._pad_to_window(self._check_wav(wav, max_len=self.window_samples))
        return self.quantizer.encode(self._run_encoder(wav), num_scales)

    @torch.inference_mode()
    def latent_from_codes(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Codes (any prefix of the scales) -> the decoder input ``Tensor[B x dimension x T / hop]``."""
        return self.quantizer.decode([c.to(self.device) for c in codes])

    @torch.inference_mode()
    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Codes (all scales, or a coarse-to-fine prefix) -> audio ``Tensor[B x 1 x window]``."""
        return self._run_decoder(self.latent_from_codes(codes))[..., : self.window_samples]

    @torch.inference_mode()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Decoder only: ``Tensor[B x dimension x F]`` -> ``Tensor[B x 1 x F * hop]``."""
        return self._run_decoder(latent.to(self.device))

    # ---------------------------------------------------------------- long audio
    def _windows(self, wav: torch.Tensor) -> tuple[torch.Tensor, int]:
        b, c, t = wav.shape
        n = max(1, math.ceil(t / self.window_samples))
        wav = F.pad(wav, (0, n * self.window_samples - t))
        return wav.view(b, c, n, self.window_samples).permute(0, 2, 1, 3).reshape(b * n, c, self.window_samples), n

    @torch.inference_mode()
    def encode_long(self, wav: torch.Tensor, batch_windows: int = 8) -> list[torch.Tensor]:
        """Audio of any length ``Tensor[B x 1 x T]`` -> codes ``LongTensor[B x n_windows x s_k]`` per
        scale, window by window (the last window zero-padded). Keep ``T`` to trim after decoding."""
        wav = self._check_wav(wav)
        b = wav.shape[0]
        windows, n = self._windows(wav)
        parts = [self.encode(chunk) for chunk in windows.split(batch_windows)]
        return [torch.cat([p[k] for p in parts]).view(b, n, -1) for k in range(len(parts[0]))]

    @torch.inference_mode()
    def decode_long(self, codes: list[torch.Tensor], length: int | None = None, batch_windows: int = 8) -> torch.Tensor:
        """Inverse of :meth:`encode_long`: codes ``[B x n x s_k]`` -> ``Tensor[B x 1 x length]``."""
        b, n = codes[0].shape[:2]
        flat = [c.reshape(b * n, -1) for c in codes]
        parts = [self.decode([c[i : i + batch_windows] for c in flat]) for i in range(0, b * n, batch_windows)]
        wav = torch.cat(parts).view(b, n, 1, -1).permute(0, 2, 1, 3).reshape(b, 1, -1)
        return wav[..., :length] if length is not None else wav

    @torch.inference_mode()
    def reconstruct(self, wav: torch.Tensor, num_scales: int | None = None, batch_windows: int = 8) -> torch.Tensor:
        """Encode and decode audio of any length, window by window: ``[B x 1 x T]`` -> ``[B x 1 x T]``.
        With ``num_scales`` only the first scales are used (coarse reconstruction)."""
        t = self._check_wav(wav).shape[-1]
        codes = self.encode_long(wav, batch_windows)
        if num_scales is not None:
            codes = codes[:num_scales]
        return self.decode_long(codes, t, batch_windows)

    # ---------------------------------------------------------------- training
    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Training/eval forward on one window ``[B x 1 x window]``: returns
        (reconstruction ``[B x 1 x window]``, codes, commitment loss). In training mode the
        codebooks are updated (EMA) and gradients pass straight through the quantizer."""
        t = wav.shape[-1]
        latent = self.encoder(wav)
        quantized, codes, commit = self.quantizer(latent)
        return self.decoder(quantized)[..., :t], codes, commit

    # ---------------------------------------------------------------- helpers for the transformer
    def code_embedding(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of scale ``k``: ``LongTensor[B x s_k]`` -> ``Tensor[B x latent_dim x s_k]``."""
        return self.quantizer.code_embedding(k, codes)

    def teacher_forcing_inputs(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Inputs of scales 2..K: ``Tensor[B x s_{k+1} x latent_dim]`` for k = 0..K-2."""
        return self.quantizer.teacher_forcing_inputs(codes)

    def next_scale_input(self, k: int, f_hat: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale ``k`` to the running latent sum ``f_hat`` ``[B x latent_dim x T]``; returns the new
        sum and the next scale's input ``[B x s_{k+1} x latent_dim]``."""
        return self.quantizer.next_scale_input(k, f_hat, codes)

    def decode_quantized_sum(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Running latent sum ``[B x latent_dim x T]`` (quantizer space) -> audio ``[B x 1 x window]``."""
        return self._run_decoder(self.quantizer.unproject_latent(f_hat))[..., : self.window_samples]

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory``."""
        return save_folder(directory, self.kind, self.config.to_dict(), self.state_dict())

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        scales: list[int] | None = None,
        device: str | torch.device | None = None,
        inference_dtype: torch.dtype | str = torch.float32,
    ) -> "SAT":
        """Load a tokenizer from our folder format or an authors' released ``.pth``.

        For a released file the sizes are read from tensor shapes; ``scales`` defaults to the
        paper's 16-scale schedule when the file has 16 codebooks and must be given otherwise.
        The model is returned in eval mode; ``inference_dtype`` see :attr:`inference_dtype`.
        """
        path = Path(path)
        if is_folder_checkpoint(path):
            config, state = load_folder(path, cls.kind)
            try:
                cfg = SATConfig.from_dict(config)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: invalid SAT config ({exc})") from None
            if scales is not None and list(scales) != cfg.scales:
                raise CheckpointError(f"{path}: scales {list(scales)} differ from the saved schedule {cfg.scales}")
            model = cls(cfg)
            _load_state(model, state, path)
        else:
            from aar.tokenizer.official import load_official_sat

            model = load_official_sat(path, scales=scales)
        model.eval()
        model.inference_dtype = inference_dtype
        if device is not None:
            model.to(device)
        return model


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
        raise CheckpointError(f"{path}: weights do not match the model ({'; '.join(parts)})")
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(
            f"{path}: shape mismatch for {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
        )
    check_finite_weights(state, path)
    model.load_state_dict(state)
