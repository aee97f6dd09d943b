"""Our metrics against the published reference implementations, on the same weights and audio.

No pretrained weight can be downloaded here, so each backbone gets one seeded random state that is
loaded both into the reference class and into ours; both run on the same clips (several lengths
and sample rates) and must agree. The Fréchet distance, ISc and KL are compared with the
reference functions on the same embeddings and logits. References (installed by the ``test``
extra; a test skips, naming the package, when one is absent):

- VGGish: torchvggish 0.2 (``vggish_input.waveform_to_examples`` + ``VGG``), used as the FAD
  tool-chains use it (``postprocess=False``, last ReLU dropped).
- PANNs CNN14: the PANNs model code as copied into frechet_audio_distance 0.3.4 and
  audioldm_eval 0.0.3 (torchlibrosa 0.1.0 front end); audioldm_eval's copy is the one whose
  ``logits`` feed its ISc and KL.
- Fréchet distance, ISc, KL: audioldm_eval 0.0.3 (``calculate_fid``, the pytorch-fid
  ``calculate_frechet_distance`` of its VGGish FAD, ``calculate_isc``, ``calculate_kl``).

Tolerances: the networks run in float32 on both sides with different but equivalent kernels
(torchlibrosa's STFT is a convolution with DFT kernels, ours an FFT; torchvggish frames and
transforms in float64 numpy, we in float32 torch), so results differ by float32 rounding in
different summation orders: measured up to ~2e-6 relative on embeddings and logits. They are
asserted to 1e-4 relative (L2 over a batch), 50x above that and far below what a preprocessing
difference gives (a symmetric instead of periodic window, another mel range or log offset: 1e-3
to 1e-1). The metric functions are float64 on both sides: asserted to 1e-6 relative.

Reproduce: ``.venv/bin/pytest -q -rs tests/metrics/test_reference_parity.py``
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import soundfile
import torch

from aar.audio import resample, save_audio
from aar.metrics import EmbeddingStats, MetricError, evaluate_folders, inception_score, kl_divergence, load_backbone
from aar.metrics.backbones.vggish import vggish_examples, vggish_mel_weights
from aar.metrics.frechet import frechet_distance
from tests.metrics import references
from tests.metrics.conftest import tone

NETWORK_RTOL = 1e-4  # float32 networks, different summation orders (see the module docstring)
METRIC_RTOL = 1e-6  # float64 on both sides


def relative_error(ours, reference) -> float:
    ours, reference = torch.as_tensor(ours).double(), torch.as_tensor(reference).double()
    return float((ours - reference).norm() / reference.norm())


def clip(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """A chord with noise and an onset: broadband enough to exercise every mel band."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wav = sum(0.2 * np.sin(2 * np.pi * f * (1 + 0.1 * seed) * t) for f in (220.0, 1330.0, 3150.0))
    wav = wav * np.minimum(1.0, t / 0.05) + 0.03 * rng.standard_normal(t.size)
    return wav.astype(np.float32)


# ---------------------------------------------------------------------------------------- VGGish


@pytest.fixture(scope="module")
def vggish_pair(tmp_path_factory):
    """torchvggish's VGG as the FAD tools use it, and our VGGish, with one random state."""
    reference = references.torchvggish_vgg(seed=11)
    reference.embeddings = torch.nn.Sequential(*list(reference.embeddings.children())[:-1])  # use_activation=False
    path = tmp_path_factory.mktemp("vggish") / "vggish-10086976.pth"
    torch.save(reference.state_dict(), path)
    return reference, load_backbone("vggish", path)


def _vggish_input():
    return references.submodule("torchvggish", "vggish_input", "torchvggish")


@pytest.mark.parametrize("seconds", [0.975, 1.7, 3.3])
def test_vggish_log_mel_examples_match_torchvggish(seconds):
    wav = clip(seconds, 16_000, seed=1)
    expected = _vggish_input().waveform_to_examples(wav.astype(np.float64), 16_000).detach()[:, 0]
    got = vggish_examples(torch.from_numpy(wav)[None], vggish_mel_weights())[0]
    assert got.shape == expected.shape
    # log(mel + 0.01) of float32 against float64 magnitudes: ~1e-5 absolute on values of order 1-10.
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("sample_rate", "seconds"), [(16_000, 0.975), (16_000, 2.5), (22_050, 1.3), (44_100, 2.0), (8_000, 1.1)]
)
def test_vggish_embeddings_match_torchvggish(vggish_pair, sample_rate, seconds):
    reference, ours = vggish_pair
    wav = clip(seconds, sample_rate, seed=2).astype(np.float64)
    # The reference resamples with resampy inside waveform_to_examples; ours is given the same
    # resampled audio, so everything after resampling is compared (aar resamples with soxr:
    # a difference documented with its size in docs/evaluation.md).
    with torch.inference_mode():
        expected = reference(_vggish_input().waveform_to_examples(wav, sample_rate).detach())
        if sample_rate != 16_000:
            wav = _resampy().resample(wav, sample_rate, 16_000)
        got = ours(torch.from_numpy(wav).float()[None]).embeddings[0]
    assert got.shape == expected.shape
    assert relative_error(got, expected) < NETWORK_RTOL


def _resampy():
    return pytest.importorskip("resampy", reason="resampy (torchvggish's resampler) is not installed")


# ------------------------------------------------------------------------------------ PANNs CNN14


@pytest.fixture(scope="module")
def cnn14_pair(tmp_path_factory):
    """The PANNs CNN14 (frechet_audio_distance's and audioldm_eval's copies) and ours, one random state.

    audioldm_eval's class loads ``ckpt/Cnn14_mAP=0.431.pth`` from the working directory in its
    constructor (downloading it when absent), so the random state is written there first.
    """
    reference = references.panns_cnn14(seed=12)
    state = dict(reference.state_dict())
    folder = tmp_path_factory.mktemp("panns")
    (folder / "ckpt").mkdir()
    torch.save({"iteration": 0, "model": state}, folder / "ckpt" / "Cnn14_mAP=0.431.pth")
    ours = load_backbone("panns", folder / "ckpt" / "Cnn14_mAP=0.431.pth")
    models = references.submodule("audioldm_eval", "feature_extractors.panns.models", "audioldm_eval")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        audioldm = models.Cnn14(
            features_list=["2048", "logits"], sample_rate=32_000, window_size=1024, hop_size=320,
            mel_bins=64, fmin=50, fmax=14_000, classes_num=527,
        ).eval()
    finally:
        os.chdir(cwd)
    return reference, audioldm, ours


@pytest.mark.parametrize(
    ("sample_rate", "seconds", "count"), [(32_000, 0.4, 2), (32_000, 1.7, 1), (16_000, 0.7, 1), (44_100, 0.6, 1), (48_000, 0.9, 1)]
)
def test_cnn14_embeddings_and_logits_match_panns(cnn14_pair, sample_rate, seconds, count):
    reference, audioldm, ours = cnn14_pair
    wavs = np.stack([clip(seconds, sample_rate, seed=s) for s in range(3, 3 + count)])
    if sample_rate != 32_000:
        # panns_inference reads clips with librosa.load(sr=32000): soxr, high quality, as aar does.
        librosa = pytest.importorskip("librosa")
        expected_input = librosa.resample(wavs, orig_sr=sample_rate, target_sr=32_000, res_type="soxr_hq")
        wavs = np.stack([resample(w, sample_rate, 32_000) for w in wavs])
        np.testing.assert_allclose(wavs, expected_input, atol=1e-6)
    x = torch.from_numpy(wavs)
    with torch.inference_mode():
        got = ours(x)
        expected = reference(x, None)
        expected_audioldm = audioldm(x)
    assert relative_error(got.embeddings[:, 0], expected["embedding"]) < NETWORK_RTOL
    assert relative_error(torch.sigmoid(got.logits), expected["clipwise_output"]) < NETWORK_RTOL
    assert relative_error(got.embeddings[:, 0], expected_audioldm["2048"]) < NETWORK_RTOL
    assert relative_error(got.logits, expected_audioldm["logits"]) < NETWORK_RTOL


# ------------------------------------------------------------------------------- Fréchet distance


def _audioldm_fid():
    return references.submodule("audioldm_eval", "metrics.fid", "audioldm_eval")


def _reference_frechet(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """audioldm_eval's two copies of pytorch-fid's distance: its PANNs FD and its VGGish FAD."""
    fid = _audioldm_fid()
    fad = references.submodule("audioldm_eval", "metrics.fad", "audioldm_eval")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's sqrtm warns on the singular products of small sets
        panns_fd = fid.calculate_fid({"x": torch.from_numpy(a)}, {"x": torch.from_numpy(b)}, "x")["frechet_distance"]
        mu_a, sigma_a = a.mean(axis=0), np.cov(a, rowvar=False)
        mu_b, sigma_b = b.mean(axis=0), np.cov(b, rowvar=False)
        vggish_fad = fad.FrechetAudioDistance.calculate_frechet_distance(None, mu_a, sigma_a, mu_b, sigma_b)
    return float(panns_fd), float(vggish_fad)


def _sets(case: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if case == "full rank":
        return rng.standard_normal((300, 64)), 1.3 * rng.standard_normal((280, 64)) + 0.2
    if case == "few clips":  # 2 and 3 embeddings of 128 dimensions: covariances of rank 1 and 2
        return rng.standard_normal((2, 128)), rng.standard_normal((3, 128)) + 0.5
    if case == "rank deficient":  # 20 embeddings of 128 dimensions, as 20 clips of a small eval set
        return rng.standard_normal((20, 128)), 2.0 * rng.standard_normal((25, 128))
    if case == "constant dimension":
        a = rng.standard_normal((40, 16))
        a[:, 3] = 1.0
        return a, rng.standard_normal((50, 16))
    if case == "zero covariance":  # every clip of one set gives the same embedding
        return np.ones((5, 16)), rng.standard_normal((30, 16))
    if case == "identical sets":
        a = rng.standard_normal((30, 16))
        return a, a.copy()
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["full rank", "few clips", "rank deficient", "constant dimension", "zero covariance", "identical sets"]
)
def test_frechet_distance_matches_pytorch_fid_references(case):
    a, b = _sets(case, np.random.default_rng(5))
    ours = EmbeddingStats.from_embeddings(a).distance(EmbeddingStats.from_embeddings(b))
    for expected in _reference_frechet(a, b):
        if case == "identical sets":
            assert ours == 0.0 and abs(expected) < 1e-9  # the reference keeps sqrtm's rounding
        else:
            assert ours == pytest.approx(expected, rel=METRIC_RTOL)


def test_frechet_distance_matches_the_references_eps_fallback(monkeypatch):
    # When SciPy's sqrtm of the product is not finite (older SciPy on singular products) the
    # references redo it with 1e-6 added to both covariance diagonals. Force that branch.
    a, b = _sets("rank deficient", np.random.default_rng(6))
    fid = _audioldm_fid()
    sqrtm = fid.scipy.linalg.sqrtm
    calls = []

    def first_call_not_finite(matrix, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return np.full_like(matrix, np.nan), 0.0
        return sqrtm(matrix, *args, **kwargs)

    monkeypatch.setattr(fid.scipy.linalg, "sqrtm", first_call_not_finite)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = fid.calculate_fid({"x": torch.from_numpy(a)}, {"x": torch.from_numpy(b)}, "x")["frechet_distance"]
    assert len(calls) == 2
    stats_a, stats_b = EmbeddingStats.from_embeddings(a), EmbeddingStats.from_embeddings(b)
    assert stats_a.distance(stats_b, eps=1e-6) == pytest.approx(expected, rel=METRIC_RTOL)
    # The offset is not negligible on rank-deficient sets: every null direction adds ~sqrt(eps).
    assert stats_a.distance(stats_b) != pytest.approx(expected, rel=1e-5)


def test_frechet_distance_of_a_single_clip_is_refused_like_the_reference():
    a, b = _sets("constant dimension", np.random.default_rng(7))
    with pytest.raises(MetricError, match="at least 2"):
        EmbeddingStats.from_embeddings(a[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # np.cov of one row: NaN covariance, then sqrtm fails or gives NaN
        try:
            value = _reference_frechet(a[:1], b)[0]
        except (ValueError, np.linalg.LinAlgError):
            return
    assert not np.isfinite(value)


def test_frechet_distance_function_is_symmetric_in_its_sets():
    a, b = _sets("rank deficient", np.random.default_rng(8))
    sa, sb = EmbeddingStats.from_embeddings(a), EmbeddingStats.from_embeddings(b)
    forward = frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma)
    assert frechet_distance(sb.mu, sb.sigma, sa.mu, sa.sigma) == pytest.approx(forward, rel=1e-9)


# ------------------------------------------------------------------------------------ ISc and KL


def _isc_module():
    return references.submodule("audioldm_eval", "metrics.isc", "audioldm_eval")


def _kl_module():
    return references.submodule("audioldm_eval", "metrics.kl", "audioldm_eval")


@pytest.mark.parametrize(("count", "scale"), [(10, 1.0), (11, 3.0), (37, 1.0), (250, 3.0), (64, 40.0)])
def test_inception_score_matches_audioldm_eval(count, scale, capsys):
    logits = scale * torch.randn(count, 527, generator=torch.Generator().manual_seed(count), dtype=torch.float64)
    expected = _isc_module().calculate_isc({"logits": logits.float()}, "logits", 2020, True, 10)
    mean, std = inception_score(logits.float())
    assert mean == pytest.approx(expected["inception_score_mean"], rel=METRIC_RTOL)
    assert std == pytest.approx(expected["inception_score_std"], rel=METRIC_RTOL, abs=1e-12)


def test_inception_score_with_fewer_clips_than_splits(capsys):
    # The reference averages empty splits into NaN; we refuse (and `aar evaluate` uses fewer splits).
    logits = torch.randn(6, 527, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _isc_module().calculate_isc({"logits": logits}, "logits", 2020, True, 10)
    assert np.isnan(expected["inception_score_mean"])
    with pytest.raises(MetricError, match="at least 10"):
        inception_score(logits)
    expected = _isc_module().calculate_isc({"logits": logits}, "logits", 2020, True, 6)
    assert inception_score(logits, splits=6)[0] == pytest.approx(expected["inception_score_mean"], rel=METRIC_RTOL)


def _reference_kl(generated: torch.Tensor, reference: torch.Tensor) -> dict:
    names = [f"clip{i}.wav" for i in range(len(generated))]
    result, _, _ = _kl_module().calculate_kl(
        {"logits": generated, "file_path_": names}, {"logits": reference, "file_path_": names}, "logits", True
    )
    return result


@pytest.mark.parametrize(("count", "scale"), [(1, 1.0), (7, 1.0), (64, 3.0), (20, 40.0)])
def test_kl_matches_audioldm_eval(count, scale, capsys):
    generator = torch.Generator().manual_seed(100 + count)
    gen = scale * torch.randn(count, 527, generator=generator, dtype=torch.float64)
    ref = scale * torch.randn(count, 527, generator=generator, dtype=torch.float64)
    expected = _reference_kl(gen, ref)
    softmax = kl_divergence(gen, ref, "softmax").mean().item()
    sigmoid = kl_divergence(gen, ref, "sigmoid").mean().item()
    assert softmax == pytest.approx(expected["kullback_leibler_divergence_softmax"], rel=METRIC_RTOL)
    assert sigmoid == pytest.approx(expected["kullback_leibler_divergence_sigmoid"], rel=METRIC_RTOL)


def test_kl_of_identical_clips_matches_audioldm_eval(capsys):
    # Not exactly 0 on either side: the 1e-6 inside the log gives a small negative KL.
    logits = torch.randn(5, 527, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = _reference_kl(logits, logits)
    assert kl_divergence(logits, logits, "softmax").mean().item() == pytest.approx(
        expected["kullback_leibler_divergence_softmax"], rel=METRIC_RTOL
    )
    assert kl_divergence(logits, logits, "sigmoid").mean().item() == pytest.approx(
        expected["kullback_leibler_divergence_sigmoid"], rel=METRIC_RTOL
    )


# -------------------------------------------------------- end to end: `aar evaluate` vs the tools


def test_evaluate_vggish_fad_is_the_reference_tools_fad(vggish_pair, tmp_path):
    # 16 kHz clips (no resampling on either side), several lengths: the FAD of `aar evaluate`
    # equals the one audioldm_eval / frechet_audio_distance compute from the same files.
    reference, ours = vggish_pair
    vggish_input = _vggish_input()
    sets = {}
    for role, offset in (("ref", 0), ("gen", 50)):
        folder = tmp_path / role
        folder.mkdir()
        embeddings = []
        for i, seconds in enumerate((1.0, 2.0, 0.98, 1.5)):
            save_audio(folder / f"{i}.wav", clip(seconds, 16_000, seed=offset + i), 16_000)
            wav, _ = soundfile.read(folder / f"{i}.wav", dtype="float32")
            with torch.inference_mode():
                embeddings.append(reference(vggish_input.waveform_to_examples(wav.astype(np.float64), 16_000)).numpy())
        sets[role] = np.concatenate(embeddings)
    expected = _reference_frechet(sets["gen"], sets["ref"])[1]
    report = evaluate_folders(tmp_path / "ref", tmp_path / "gen", ours, metrics=["fad"], progress=False)
    # Embeddings agree to ~1e-6 (float32); the distance amplifies that little: 1e-4.
    assert report["metrics"]["fad"] == pytest.approx(expected, rel=NETWORK_RTOL)


def test_evaluate_isc_and_kl_are_audioldm_evals(cnn14_pair, tmp_path, capsys):
    _, audioldm, ours = cnn14_pair
    logits = {}
    for role, offset in (("ref", 0), ("gen", 7)):
        folder = tmp_path / role
        folder.mkdir()
        for i in range(10):
            save_audio(folder / f"{i}.wav", clip(0.35, 32_000, seed=offset + i), 32_000)
        # The tools read the files (16-bit PCM) as floats in [-1, 1], as aar does.
        wavs = np.stack([soundfile.read(folder / f"{i}.wav", dtype="float32")[0] for i in range(10)])
        with torch.inference_mode():
            logits[role] = audioldm(torch.from_numpy(wavs))["logits"].double()
    report = evaluate_folders(tmp_path / "ref", tmp_path / "gen", ours, metrics=["isc", "kl"], progress=False)
    # evaluate lists clips in name order, as the files were written, so rows line up.
    expected_isc = _isc_module().calculate_isc({"logits": logits["gen"]}, "logits", 2020, True, 10)
    # audioldm_eval computes KL in the logits' dtype (float32 in its pipeline); given float64 here,
    # as ours always is. Random-weight logits of similar clips give KLs near 0 (sums of 527 terms
    # that cancel), so the float32 network difference is bounded in absolute terms: logits agree
    # to ~1e-5 absolute, and a KL moves by at most ~2 max|logit change|: 2e-5.
    expected_kl = _reference_kl(logits["gen"], logits["ref"])
    assert report["metrics"]["isc_mean"] == pytest.approx(expected_isc["inception_score_mean"], rel=NETWORK_RTOL)
    assert report["metrics"]["kl_softmax"] == pytest.approx(
        expected_kl["kullback_leibler_divergence_softmax"], rel=NETWORK_RTOL, abs=2e-5
    )
    assert report["metrics"]["kl_sigmoid"] == pytest.approx(
        expected_kl["kullback_leibler_divergence_sigmoid"], rel=NETWORK_RTOL, abs=2e-5
    )
