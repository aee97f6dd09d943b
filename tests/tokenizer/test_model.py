import pytest
import torch

from aar import SAT, SATConfig
from aar.checkpoint import CheckpointError
from aar.tokenizer import PAPER_SCALES
from tests.conftest import sine_mix


def test_encode_decode_shapes_and_dtypes(tiny_sat):
    wav = sine_mix(3)
    codes = tiny_sat.encode(wav)
    assert [tuple(c.shape) for c in codes] == [(3, s) for s in PAPER_SCALES]
    assert all(c.dtype == torch.long and c.min() >= 0 and c.max() < 1024 for c in codes)
    latent = tiny_sat.encode_latent(wav)
    assert latent.shape == (3, 32, 75)
    assert tiny_sat.latent_from_codes(codes).shape == (3, 32, 75)
    out = tiny_sat.decode(codes)
    assert out.shape == (3, 1, 24000) and out.dtype == torch.float32
    assert tiny_sat.decode(codes[:4]).shape == (3, 1, 24000)


def test_short_input_is_padded_and_long_input_needs_windows(tiny_sat):
    assert tiny_sat.encode(sine_mix(1, seconds=0.5))[-1].shape == (1, 75)
    with pytest.raises(ValueError, match="encode_long"):
        tiny_sat.encode(sine_mix(1, seconds=1.5))
    with pytest.raises(ValueError, match=r"B x 1 x T"):
        tiny_sat.encode(torch.zeros(24000))


def test_long_audio_round_trip_keeps_length(tiny_sat):
    wav = sine_mix(2, seconds=2.3)
    codes = tiny_sat.encode_long(wav, batch_windows=2)
    assert codes[0].shape == (2, 3, 1) and codes[-1].shape == (2, 3, 75)
    out = tiny_sat.decode_long(codes, wav.shape[-1])
    assert out.shape == wav.shape
    assert torch.allclose(tiny_sat.reconstruct(wav), out)
    # window 2 of clip 1 equals encoding that window on its own
    window = wav[1:2, :, 24000:48000]
    assert all(torch.equal(c[1, 1], w[0]) for c, w in zip(codes, tiny_sat.encode(window)))


def test_prefix_decoding_error_shrinks_after_training():
    """Fit the quantizer (k-means init, EMA, phi by the commitment loss) on the spot, then
    decoding more scales must bring the quantized latent closer to the encoder latent."""
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset("tiny"))
    wav = sine_mix(8, seed=1)
    with torch.no_grad():
        latent = sat.encoder(wav)
    quantizer = sat.quantizer.train()
    opt = torch.optim.Adam(quantizer.parameters(), 3e-3)
    losses = []
    for _ in range(40):
        _, _, loss = quantizer(latent)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    sat.eval()
    codes = sat.encode(wav)
    target = sat.quantizer.project_latent(sat.encode_latent(wav))
    errors = [(sat.quantizer.quantized_sum(codes[:k]) - target).pow(2).mean().item() for k in (1, 4, 8, 16)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.5 * errors[0], errors


def test_training_forward_updates_codebooks_and_passes_gradients():
    torch.manual_seed(0)
    sat = SAT(SATConfig.preset("tiny")).train()
    wav = sine_mix(2)
    out, codes, commit = sat(wav)
    assert out.shape == wav.shape and commit.dim() == 0 and commit.item() > 0
    assert all(bool(b.initialized) for b in sat.quantizer.codebooks)
    (out.pow(2).mean() + commit).backward()
    assert sat.encoder.model[0].weight_v.grad is not None
    assert sat.quantizer.phi[0].weight.grad is not None


def test_save_load_round_trip_is_bit_exact(tmp_path, tiny_sat):
    with torch.no_grad():
        tiny_sat.train()(sine_mix(2))  # initialise codebooks so buffers are non-trivial
    tiny_sat.eval()
    tiny_sat.save_pretrained(tmp_path / "sat")
    loaded = SAT.from_pretrained(tmp_path / "sat")
    assert loaded.config == tiny_sat.config
    for (k, a), (k2, b) in zip(tiny_sat.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    wav = sine_mix(2, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(tiny_sat.encode(wav), loaded.encode(wav)))
    assert torch.equal(tiny_sat.reconstruct(wav), loaded.reconstruct(wav))


def test_loading_errors_name_the_path(tmp_path, tiny_sat):
    with pytest.raises(CheckpointError, match="nowhere"):
        SAT.from_pretrained(tmp_path / "nowhere")
    bad = tmp_path / "junk.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        SAT.from_pretrained(bad)
    tiny_sat.save_pretrained(tmp_path / "sat")
    with pytest.raises(CheckpointError, match="differ"):
        SAT.from_pretrained(tmp_path / "sat", scales=[1, 75])


@pytest.mark.parametrize("causal", [False, True])
def test_causal_option_and_n_filters(causal):
    cfg = SATConfig(dimension=16, latent_dim=8, n_filters=2, lstm=0, causal=causal, scales=[1, 5, 25, 75])
    sat = SAT(cfg).eval()
    assert sat.encoder.model[0].weight_v.shape == (2, 1, 7)
    wav = sine_mix(1)
    assert sat.reconstruct(wav).shape == wav.shape
    if causal:  # a change at the end cannot affect earlier encoder frames
        wav2 = wav.clone()
        wav2[..., -320:] += 0.5
        a, b = sat.encode_latent(wav), sat.encode_latent(wav2)
        assert torch.equal(a[..., :-1], b[..., :-1]) and not torch.equal(a, b)


def test_rvq_baseline_encodes_every_level_at_full_rate():
    sat = SAT(SATConfig(dimension=16, latent_dim=8, n_filters=2, lstm=0, scales=[75] * 8, phi="none")).eval()
    wav = sine_mix(2)
    codes = sat.encode(wav)
    assert [tuple(c.shape) for c in codes] == [(2, 75)] * 8
    assert sat.decode(codes).shape == wav.shape


def test_bfloat16_inference_is_close_and_keeps_fp32_weights(tiny_sat):
    wav = sine_mix(2)
    ref_latent, ref_audio = tiny_sat.encode_latent(wav), tiny_sat.reconstruct(wav)
    tiny_sat.inference_dtype = "bf16"
    latent, audio = tiny_sat.encode_latent(wav), tiny_sat.reconstruct(wav)
    assert latent.dtype == audio.dtype == torch.float32
    # bf16 keeps ~3 significant digits; a random tiny net amplifies that to a few percent
    assert 0 < ((latent - ref_latent).norm() / ref_latent.norm()).item() < 0.2
    assert ((audio - ref_audio).norm() / ref_audio.norm()).item() < 0.2
    assert all(p.dtype == torch.float32 for p in tiny_sat.parameters())
    tiny_sat.inference_dtype = torch.float32
    assert torch.equal(tiny_sat.encode_latent(wav), ref_latent)
    with pytest.raises(ValueError, match="int8"):
        tiny_sat.inference_dtype = "int8"
