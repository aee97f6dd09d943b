"""``aar evaluate`` on small generated folders, including the bad-input cases."""

import json

import numpy as np
import pytest

from aar.audio import load_audio
from aar.cli.main import main
from aar.metrics import mel_distance, stft_distance
from tests.metrics.conftest import write_clips

NAMES = ["a", "b", "c", "d"]


def evaluate(tmp_path, *args):
    return main(["evaluate", "--cache-dir", str(tmp_path / "cache"), "--no-progress", *map(str, args)])


@pytest.fixture
def folders(tmp_path):
    reference = write_clips(tmp_path / "ref", NAMES, seconds=1.0)
    generated = write_clips(tmp_path / "gen", NAMES, seconds=1.0, noise=0.02)
    return reference, generated


def test_default_mel_backbone_writes_table_and_report(tmp_path, folders, capsys):
    reference, generated = folders
    report_path = tmp_path / "report.json"
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "-o", report_path) == 0
    out = capsys.readouterr().out
    assert "FAD (mel)" in out and "MEL distance" in out and "STFT distance" in out
    assert "not comparable with published FADs" in out
    report = json.loads(report_path.read_text())
    assert set(report["metrics"]) == {"fad", "mel_distance", "stft_distance"}
    assert report["backbone"]["comparable_with_published"] is False
    assert report["counts"] == {
        "reference_files": 4, "generated_files": 4, "pairs": 4,
        "reference_embeddings": 4, "generated_embeddings": 4, "spectral_pairs": 4,
    }
    # The paired values are the library's, at 24 kHz.
    ref = load_audio(reference / "b.wav")
    gen = load_audio(generated / "b.wav")
    assert report["per_pair"]["b"]["mel_distance"] == pytest.approx(mel_distance(gen, ref).item(), rel=1e-5)
    assert report["per_pair"]["b"]["stft_distance"] == pytest.approx(stft_distance(gen, ref).item(), rel=1e-5)
    assert report["metrics"]["mel_distance"] == pytest.approx(
        np.mean([v["mel_distance"] for v in report["per_pair"].values()])
    )


def test_identical_folders_score_zero_and_reference_is_cached(tmp_path, folders, capsys):
    reference, _ = folders
    report_path = tmp_path / "r.json"
    assert evaluate(tmp_path, "--reference", reference, "--generated", reference, "-o", report_path) == 0
    first = json.loads(report_path.read_text())
    assert first["metrics"]["fad"] == pytest.approx(0.0, abs=1e-6)
    assert first["metrics"]["mel_distance"] == 0.0 and first["metrics"]["stft_distance"] == 0.0
    cache_file = first["reference_cache"]
    assert cache_file and (tmp_path / "cache").is_dir()
    capsys.readouterr()
    assert evaluate(tmp_path, "--reference", reference, "--generated", reference, "-o", report_path) == 0
    second = json.loads(report_path.read_text())
    assert any("read from the cache" in note for note in second["notes"])
    assert second["metrics"]["fad"] == first["metrics"]["fad"]
    # Changing a reference file invalidates the entry.
    write_clips(reference, ["a"], seconds=1.0, noise=0.1)
    assert evaluate(tmp_path, "--reference", reference, "--generated", reference, "-o", report_path) == 0
    assert not any("read from the cache" in n for n in json.loads(report_path.read_text())["notes"])


def test_panns_gives_isc_and_kl(tmp_path, folders, cnn14_checkpoint):
    reference, generated = folders
    path, _ = cnn14_checkpoint
    report_path = tmp_path / "r.json"
    args = ["--reference", reference, "--generated", generated, "--backbone", "panns", "--weights", path]
    assert evaluate(tmp_path, *args, "--metrics", "isc", "kl", "fad", "-o", report_path) == 0
    report = json.loads(report_path.read_text())
    assert set(report["metrics"]) == {"fad", "isc_mean", "isc_std", "kl_softmax", "kl_sigmoid"}
    assert report["counts"]["kl_pairs"] == 4 and report["counts"]["isc_splits"] == 4
    assert 1.0 <= report["metrics"]["isc_mean"] <= 527
    assert report["metrics"]["kl_softmax"] > 0
    # Same folder on both sides: KL is zero up to the tool-chain's 1e-6 inside the log.
    assert evaluate(tmp_path, "--reference", reference, "--generated", reference, "--backbone", "panns",
                    "--weights", path, "--metrics", "kl", "-o", report_path) == 0
    assert abs(json.loads(report_path.read_text())["metrics"]["kl_softmax"]) < 527e-6


def test_vggish_fad_through_the_command(tmp_path, folders, vggish_checkpoint):
    reference, generated = folders
    path, _ = vggish_checkpoint
    report_path = tmp_path / "r.json"
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "--backbone", "vggish",
                    "--weights", path, "--metrics", "fad", "-o", report_path) == 0
    report = json.loads(report_path.read_text())
    assert report["counts"]["generated_embeddings"] == 4  # 1 s clips: one 0.96 s frame each
    assert report["metrics"]["fad"] > 0 and report["backbone"]["comparable_with_published"] is True


def test_unreadable_files_are_skipped_and_listed(tmp_path, folders, capsys):
    reference, generated = folders
    (generated / "broken.wav").write_bytes(b"not audio at all")
    (generated / "empty.flac").write_bytes(b"")
    report_path = tmp_path / "r.json"
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "-o", report_path) == 0
    out = capsys.readouterr().out
    assert "skipped:" in out and "broken.wav" in out and "empty.flac" in out
    report = json.loads(report_path.read_text())
    assert sorted(e["file"].split("/")[-1] for e in report["skipped"]) == ["broken.wav", "empty.flac"]
    assert report["unpaired"]["generated_only"] == ["broken", "empty"]


def test_partial_pairs_use_the_common_names(tmp_path, capsys):
    reference = write_clips(tmp_path / "ref", ["a", "b", "c"], seconds=1.0)
    generated = write_clips(tmp_path / "gen", ["b", "c", "z"], seconds=1.0)
    write_clips(generated, ["b"], seconds=0.8)  # a generated clip shorter than its reference
    report_path = tmp_path / "r.json"
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "-o", report_path) == 0
    report = json.loads(report_path.read_text())
    assert report["counts"]["spectral_pairs"] == 2
    assert any("1 pairs differ in length" in note for note in report["notes"])
    assert report["unpaired"] == {"reference_only": ["a"], "generated_only": ["z"]}
    assert set(report["per_pair"]) == {"b", "c"}


def test_no_common_names(tmp_path, capsys):
    reference = write_clips(tmp_path / "ref", ["a", "b"], seconds=1.0)
    generated = write_clips(tmp_path / "gen", ["x", "y"], seconds=1.0)
    # Asked for explicitly: an error that says why.
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "--metrics", "mel") == 1
    assert "no file names in common" in capsys.readouterr().err
    # By default: FAD alone, with a note.
    report_path = tmp_path / "r.json"
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "-o", report_path) == 0
    report = json.loads(report_path.read_text())
    assert set(report["metrics"]) == {"fad"}
    assert any("skipped the paired metrics" in note for note in report["notes"])


def test_empty_folder_is_an_error(tmp_path, folders, capsys):
    reference, _ = folders
    (tmp_path / "empty").mkdir()
    assert evaluate(tmp_path, "--reference", reference, "--generated", tmp_path / "empty") == 1
    err = capsys.readouterr().err
    assert "generated folder" in err and "no audio files" in err
    assert evaluate(tmp_path, "--reference", tmp_path / "absent", "--generated", reference) == 1
    assert "no such directory" in capsys.readouterr().err


def test_too_few_clips_for_a_covariance_names_the_minimum(tmp_path, capsys):
    reference = write_clips(tmp_path / "ref", ["a"], seconds=0.5)
    generated = write_clips(tmp_path / "gen", ["a"], seconds=0.5)
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated) == 1
    err = capsys.readouterr().err
    assert "at least 2 embeddings" in err and "reference set gave 1" in err


def test_classifier_metrics_need_panns(tmp_path, folders, capsys):
    reference, generated = folders
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "--metrics", "isc") == 1
    assert "--backbone panns" in capsys.readouterr().err


def test_missing_weights_are_a_one_line_error(tmp_path, folders, capsys, monkeypatch):
    monkeypatch.delenv("AAR_PANNS_WEIGHTS", raising=False)
    reference, generated = folders
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "--backbone", "panns") == 1
    err = capsys.readouterr().err.strip()
    assert "Cnn14_mAP=0.431.pth" in err and "AAR_PANNS_WEIGHTS" in err and "\n" not in err


def test_bad_device_is_a_one_line_error(tmp_path, folders, capsys):
    reference, generated = folders
    assert evaluate(tmp_path, "--reference", reference, "--generated", generated, "--device", "foo") == 1
    assert "--device foo" in capsys.readouterr().err
