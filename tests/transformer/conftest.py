"""Fixtures of the transformer tests: a tiny tokenizer with random codebooks, a small labelled
audio folder and its token cache."""

import pytest
import torch

from aar import SAT, SATConfig
from aar.audio import save_audio
from tests.conftest import sine_mix


def random_codebook_sat(seed: int = 0) -> SAT:
    """The tiny SAT with random codebooks (an untrained one has all-zero codebooks: every code 0)."""
    torch.manual_seed(seed)
    sat = SAT(SATConfig.preset("tiny")).eval()
    with torch.no_grad():
        for book in sat.quantizer.codebooks:
            book.embed.normal_()
            book.initialized.fill_(1)
    return sat


@pytest.fixture(scope="session")
def sat_dir(tmp_path_factory):
    return random_codebook_sat().save_pretrained(tmp_path_factory.mktemp("sat") / "sat")


@pytest.fixture(scope="session")
def labelled_audio(tmp_path_factory):
    """Four 1 s clips, one per class folder (``cls0`` .. ``cls3``)."""
    root = tmp_path_factory.mktemp("audio") / "data"
    for i in range(4):
        save_audio(root / f"cls{i}" / f"clip{i}.wav", sine_mix(1, seed=10 + i)[0])
    return root


@pytest.fixture(scope="session")
def label_cache(tmp_path_factory, sat_dir, labelled_audio):
    from aar.data import open_source
    from aar.transformer.token_cache import build_token_cache

    out = tmp_path_factory.mktemp("cache") / "cache"
    build_token_cache(SAT.from_pretrained(sat_dir), open_source(labelled_audio), out, condition="label", shard_clips=3)
    return out
