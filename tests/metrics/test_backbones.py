"""Each backbone loads random weights saved in its published layout, through the user's path."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aar.checkpoint import CheckpointError
from aar.metrics import MetricError, load_backbone
from aar.metrics.backbones.panns import cnn14_log_mel
from aar.metrics.backbones.vggish import vggish_examples, vggish_mel_weights
from tests.metrics.conftest import tone

# torchvggish's vggish-10086976.pth: VGG convolutions at features.{0,3,6,8,11,13}, three linear layers.
VGGISH_LAYOUT = {
    "features.0.weight": (64, 1, 3, 3),
    "features.3.weight": (128, 64, 3, 3),
    "features.6.weight": (256, 128, 3, 3),
    "features.8.weight": (256, 256, 3, 3),
    "features.11.weight": (512, 256, 3, 3),
    "features.13.weight": (512, 512, 3, 3),
    "embeddings.0.weight": (4096, 12288),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.4.weight": (128, 4096),
}
# PANNs Cnn14_mAP=0.431.pth "model" entries (a few of them).
CNN14_LAYOUT = {
    "bn0.running_mean": (64,),
    "conv_block1.conv1.weight": (64, 1, 3, 3),
    "conv_block1.bn2.running_var": (64,),
    "conv_block6.conv2.weight": (2048, 2048, 3, 3),
    "fc1.weight": (2048, 2048),
    "fc_audioset.weight": (527, 2048),
    "fc_audioset.bias": (527,),
}


def clips(sample_rate: int, seconds: float, count: int = 2) -> torch.Tensor:
    return torch.from_numpy(np.stack([tone(seconds, sample_rate, 300.0 * (i + 1), seed=i) for i in range(count)]))


def test_vggish_checkpoint_layout_loads_and_embeds_deterministically(vggish_checkpoint):
    path, original = vggish_checkpoint
    state = torch.load(path, weights_only=True)
    for key, shape in VGGISH_LAYOUT.items():
        assert tuple(state[key].shape) == shape
        assert tuple(state[key.replace("weight", "bias")].shape) == (shape[0],)
    assert len(state) == 2 * len(VGGISH_LAYOUT)

    backbone = load_backbone("vggish", path)
    wav = clips(16_000, 2.0)  # 2 s -> two 0.96 s examples per clip
    with torch.inference_mode():
        first, again, reference = backbone(wav), backbone(wav), original(wav)
    assert first.embeddings.shape == (2, 2, 128) and first.logits is None
    assert torch.equal(first.embeddings, again.embeddings)
    torch.testing.assert_close(first.embeddings, reference.embeddings)
    assert (first.embeddings < 0).any()  # taken before torchvggish's last ReLU, as the FAD tools do
    with torch.inference_mode():
        short = backbone(wav[:, :8000]).embeddings  # 0.5 s is zero-padded to one example
    assert short.shape == (2, 1, 128)


def test_vggish_front_end_matches_the_reference_framing():
    # Independent numpy version of vggish_input: 400-sample frames every 160, periodic Hann,
    # |rfft(512)|, mel matrix, log(mel + 0.01), examples of 96 frames.
    wav = tone(1.5, 16_000, 440.0, seed=0).astype(np.float64)
    frames = 1 + (wav.size - 400) // 160
    idx = np.arange(400)[None, :] + 160 * np.arange(frames)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    spectrum = np.abs(np.fft.rfft(wav[idx] * hann, 512, axis=1))
    log_mel = np.log(spectrum @ vggish_mel_weights().double().numpy() + 0.01)
    expected = log_mel[:96].reshape(1, 96, 64)
    got = vggish_examples(torch.from_numpy(wav).float().unsqueeze(0), vggish_mel_weights())
    assert got.shape == (1, 1, 96, 64)
    np.testing.assert_allclose(got[0].numpy(), expected, atol=2e-4)


def test_vggish_mel_matrix_follows_the_published_definition():
    weights = vggish_mel_weights().numpy()
    assert weights.shape == (257, 64)
    assert (weights[0] == 0).all()  # DC bin unused
    hz = np.linspace(0, 8000, 257)
    assert (weights[hz < 125] == 0).all() and (weights[hz > 7500] == 0).all()
    assert weights.max() <= 1.0 and weights.max() > 0.9  # unnormalised triangles peaking at 1


def test_cnn14_checkpoint_layout_loads_and_embeds_deterministically(cnn14_checkpoint):
    path, original = cnn14_checkpoint
    checkpoint = torch.load(path, weights_only=False)
    for key, shape in CNN14_LAYOUT.items():
        assert tuple(checkpoint["model"][key].shape) == shape
    assert tuple(checkpoint["model"]["logmel_extractor.melW"].shape) == (513, 64)

    backbone = load_backbone("panns", path)  # the sampler's numpy state loads through the allow-list
    torch.testing.assert_close(backbone.bn0.running_var, original.bn0.running_var)
    wav = clips(32_000, 1.0)
    with torch.inference_mode():
        first, again, reference = backbone(wav), backbone(wav), original(wav)
    assert first.embeddings.shape == (2, 1, 2048)
    assert first.logits.shape == (2, 527)
    assert torch.equal(first.logits, again.logits)
    torch.testing.assert_close(first.logits, reference.logits)
    torch.testing.assert_close(first.embeddings, reference.embeddings)


def test_cnn14_front_end_matches_the_checkpoint_front_end(cnn14_checkpoint):
    # The checkpoint's own STFT kernels (DFT x Hann as a strided convolution over the reflection-padded
    # signal) and mel matrix, applied directly, must give our log-mel.
    path, _ = cnn14_checkpoint
    state = torch.load(path, weights_only=False)["model"]
    wav = clips(32_000, 0.5, count=1)
    padded = F.pad(wav.unsqueeze(1), (512, 512), mode="reflect")
    real = F.conv1d(padded, state["spectrogram_extractor.stft.conv_real.weight"], stride=320)
    imag = F.conv1d(padded, state["spectrogram_extractor.stft.conv_imag.weight"], stride=320)
    power = (real**2 + imag**2).transpose(1, 2)
    expected = 10 * torch.log10((power @ state["logmel_extractor.melW"]).clamp(min=1e-10))
    torch.testing.assert_close(cnn14_log_mel(wav, state["logmel_extractor.melW"].t()), expected, atol=1e-3, rtol=1e-4)


def test_cnn14_mel_filters_are_librosas_slaney_filters(cnn14_checkpoint):
    librosa = pytest.importorskip("librosa")
    _, model = cnn14_checkpoint
    expected = librosa.filters.mel(sr=32_000, n_fft=1024, n_mels=64, fmin=50, fmax=14_000)
    np.testing.assert_allclose(model.mel_filters.numpy(), expected, atol=1e-6)


def test_cnn14_rejects_another_front_end(cnn14_checkpoint, tmp_path):
    path, _ = cnn14_checkpoint
    state = dict(torch.load(path, weights_only=False)["model"])
    state["logmel_extractor.melW"] = torch.zeros(257, 64)  # the 16 kHz model's shape
    torch.save({"model": state}, tmp_path / "Cnn14_16k.pth")
    with pytest.raises(CheckpointError, match="32 kHz"):
        load_backbone("panns", tmp_path / "Cnn14_16k.pth")


def test_wrong_file_for_a_backbone_names_the_file(vggish_checkpoint):
    path, _ = vggish_checkpoint
    with pytest.raises(CheckpointError, match=r"vggish-10086976\.pth: not a PANNs CNN14 .*missing 68 keys"):
        load_backbone("panns", path)


def test_missing_weights_say_how_to_provide_them(monkeypatch, tmp_path):
    monkeypatch.delenv("AAR_VGGISH_WEIGHTS", raising=False)
    with pytest.raises(MetricError, match="AAR_VGGISH_WEIGHTS"):
        load_backbone("vggish")
    with pytest.raises(CheckpointError, match="no such VGGish weight file"):
        load_backbone("vggish", tmp_path / "absent.pth")
    with pytest.raises(MetricError, match="no weights"):
        load_backbone("mel", tmp_path / "x.pth")


def test_weights_from_the_environment(vggish_checkpoint, monkeypatch):
    path, _ = vggish_checkpoint
    monkeypatch.setenv("AAR_VGGISH_WEIGHTS", str(path))
    assert load_backbone("vggish").weights == str(path)


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    audio = dict(
        window_size=8, num_mel_bins=64, spec_size=256, patch_size=4, patch_stride=(4, 4), hidden_size=32,
        depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16, projection_dim=16,
    )
    text = dict(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        projection_dim=16, max_position_embeddings=40,
    )
    torch.manual_seed(4)
    model = transformers.ClapModel(transformers.ClapConfig(text_config=text, audio_config=audio, projection_dim=16))
    folder = tmp_path_factory.mktemp("clap")
    model.save_pretrained(folder)
    transformers.ClapFeatureExtractor().save_pretrained(folder)
    return folder


def test_clap_folder_loads_and_embeds_deterministically(clap_folder):
    backbone = load_backbone("clap", clap_folder)
    assert backbone.sample_rate == 48_000 and backbone.embedding_dim == 16
    wav = clips(48_000, 0.5)
    with torch.inference_mode():
        first, again = backbone(wav), backbone(wav)
        reloaded = load_backbone("clap", clap_folder)(wav)
    assert first.embeddings.shape == (2, 1, 16)
    assert torch.equal(first.embeddings, again.embeddings)
    torch.testing.assert_close(first.embeddings, reloaded.embeddings)
    torch.testing.assert_close(first.embeddings.norm(dim=-1), torch.ones(2, 1))


def test_clap_folder_without_feature_extractor_is_refused(clap_folder, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((clap_folder / name).read_bytes())
    with pytest.raises(CheckpointError, match="preprocessor_config.json"):
        load_backbone("clap", tmp_path)


def test_mel_backbone_is_weight_free_and_labelled():
    backbone = load_backbone("mel")
    assert not backbone.comparable
    out = backbone(clips(16_000, 2.0))
    assert out.embeddings.shape == (2, 2, 128)
    assert backbone(clips(16_000, 0.01, count=1)).embeddings.shape == (1, 1, 128)


def test_full_precision_disables_tf32_and_restores_the_setting():
    from aar.metrics.backbones.base import full_precision

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with full_precision():
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
