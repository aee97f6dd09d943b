"""CLAP audio/text conditioning with a tiny randomly initialised ClapModel."""

import numpy as np
import pytest
import torch

from aar import SAT, SATConfig
from aar.audio import save_audio
from aar.checkpoint import CheckpointError
from aar.conditioning import ClapAudioConditioner, ClapEmbedder, ClapTextConditioner, LabelConditioner, Unconditional
from aar.transformer import AAR, AARConfig
from tests.conditioning.tiny_clap import TINY_CLAP_DIM
from tests.conftest import sine_mix


@pytest.fixture(scope="module")
def clap(tiny_clap_dir):
    return ClapEmbedder(tiny_clap_dir)


def test_audio_embeddings(clap):
    wav = sine_mix(batch=3, seed=1)
    emb = ClapAudioConditioner(clap)(wav)
    assert emb.shape == (3, TINY_CLAP_DIM) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1], atol=1e-4)
    assert torch.equal(emb, ClapAudioConditioner(clap)(wav))


def test_audio_is_resampled_to_48k(clap, tmp_path):
    """A clip given at 24 kHz and the same clip read from a 48 kHz file embed alike."""
    t = np.arange(48_000) / 48_000
    clip48 = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1700 * t)).astype(np.float32)
    save_audio(tmp_path / "a.wav", clip48, sample_rate=48_000)
    from_file = ClapAudioConditioner(clap)([tmp_path / "a.wav"])
    clip24 = torch.from_numpy(clip48[::2].copy())[None, None]
    from_24k = ClapAudioConditioner(clap, sample_rate=24_000)(clip24)
    other = ClapAudioConditioner(clap)(sine_mix(batch=1, seed=5))
    assert (from_file - from_24k).norm() < 0.2 * (from_file - other).norm()


def test_text_embeddings(clap):
    emb = ClapTextConditioner(clap)(["a dog barks", "rain on a roof"])
    assert emb.shape == (2, TINY_CLAP_DIM)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1], atol=1e-4)
    assert torch.allclose(ClapTextConditioner(clap)("a dog barks")[0], emb[0], atol=1e-5)  # padding aside
    with pytest.raises(ValueError, match="non-empty strings"):
        clap.embed_text([""])


def test_missing_or_invalid_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not a CLAP model folder"):
        ClapEmbedder(tmp_path / "nowhere")


def test_generate_from_audio_and_text_prompts(clap):
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset("tiny")).eval()
    model = AAR(AARConfig(depth=1, width=32, num_heads=2, cond_dim=TINY_CLAP_DIM), sat).eval()
    audio_cond = ClapAudioConditioner(clap)
    audio_cond.check_model(model.config.condition)
    out = model.generate(audio_cond(sine_mix(batch=1)), seed=0)
    assert out.audio.shape == (1, 1, 24000)
    out = model.generate(ClapTextConditioner(clap)(["a dog barks"]), num_samples=2, seed=0)
    assert out.audio.shape == (2, 1, 24000)


def test_label_and_unconditional():
    labels = LabelConditioner(["dog", "rain"])
    assert labels(["rain", "dog"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="unknown label 'cat'; the model knows: dog, rain"):
        labels(["cat"])
    with pytest.raises(ValueError, match="conditioned on 'clap'"):
        labels.check_model("clap")
    assert Unconditional()("anything") is None
    Unconditional().check_model("clap")
