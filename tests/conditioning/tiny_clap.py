"""A tiny randomly initialised CLAP model + processor saved to a folder (no download)."""

from __future__ import annotations

from pathlib import Path

import torch

TINY_CLAP_DIM = 16


def save_tiny_clap(directory: Path, seed: int = 0) -> Path:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    text = dict(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                max_position_embeddings=80, projection_dim=TINY_CLAP_DIM)
    audio = dict(num_mel_bins=16, spec_size=64, window_size=4, patch_size=2, patch_stride=2, hidden_size=32,
                 patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], num_hidden_layers=2,
                 projection_dim=TINY_CLAP_DIM, enable_fusion=False)
    torch.manual_seed(seed)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=TINY_CLAP_DIM)).eval()
    # 1 s inputs keep the spectrogram within the tiny audio encoder's 256-frame window
    features = ClapFeatureExtractor(feature_size=16, sampling_rate=48_000, hop_length=480, max_length_s=1,
                                    fft_window_size=1024, truncation="rand_trunc", padding="repeatpad")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u0120"]
    vocab = {tok: i for i, tok in enumerate(specials + list("abcdefghijklmnopqrstuvwxyz"))}
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(directory)
    return directory
