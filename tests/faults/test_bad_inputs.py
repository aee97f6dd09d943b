"""Every command that reads a file, on every file of the bad-input corpus (tests/faults/corpus.py).

Each run either succeeds with finite, valid output, or exits 1 with one line that names the file
and the problem: never a traceback (``main`` re-raises anything that is not a user error, which
fails the test), never a partial output file, never code run from a pickle."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aar.cli.main import main
from tests.faults import corpus
from tests.faults.corpus import MARKER

ROOT_CASES: dict[str, list[tuple[str, str]]] = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory, sat_dir):
    """The corpus on disk, a good tokenizer, a good AAR, good clips and a good codes file."""
    from aar import SAT
    from aar.transformer import AAR, AARConfig

    root = tmp_path_factory.mktemp("corpus")
    sat = SAT.from_pretrained(sat_dir)
    torch.manual_seed(0)
    aar_dir = AAR(AARConfig(depth=2, width=64, num_heads=2, condition="none"), sat).save_pretrained(root / "aar")
    good = root / "good"
    good.mkdir()
    for i in range(3):
        sf.write(good / f"clip{i}.wav", corpus._tone(1.0, seed=i) * (0.5 + 0.2 * i), corpus.SR)
    assert main(["encode", str(good / "clip0.wav"), "--tokenizer", str(sat_dir), "-o", str(root / "good.npz")]) == 0
    return {
        "root": root,
        "sat": sat_dir,
        "aar": aar_dir,
        "good": good,
        "audio": corpus.build_audio(root / "audio"),
        "checkpoints": corpus.build_checkpoints(root / "ckpt", sat_dir, aar_dir),
        "codes": corpus.build_codes(root / "codes", root / "good.npz"),
    }


def run(argv: list, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, command: str, subject: str) -> None:
    assert code == 1, f"exit {code}: {err}"
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if f"aar {command}: error:" in line]
    assert len(errors) == 1, err
    line = errors[0]
    assert line == err.rstrip("\n").splitlines()[-1].split("\r")[-1].strip() or line in err.splitlines()[-1], err
    assert subject in line, f"{subject!r} not named in: {line}"


def assert_finite_audio(path: Path) -> None:
    wav, sr = sf.read(path, dtype="float32")
    assert sr == corpus.SR and wav.size > 0 and np.isfinite(wav).all()


def assert_nothing_left(*paths: Path) -> None:
    for path in paths:
        assert not path.exists(), f"partial output left behind: {path}"
        if path.parent.exists():
            assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], path.parent


def outcome(world, code: int, err: str, command: str, name: str, expect: str, outputs: list[Path]) -> None:
    if code == 0:
        assert expect == "ok", f"aar {command} accepted a bad input {name!r} (exit 0); stderr: {err}"
        assert "Traceback" not in err
    else:
        assert expect == "error", f"aar {command} refused the valid input {name!r}: {err}"
        assert_one_line_error(code, err, command, name)
        assert_nothing_left(*outputs)


def audio_cases():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # names and expectations only: built again in the fixture
        return corpus.build_audio(Path(tmp))


AUDIO = audio_cases()


# ----------------------------------------------------------------- audio inputs
@pytest.mark.parametrize("name,expect", AUDIO, ids=[n for n, _ in AUDIO])
def test_reconstruct_and_encode(world, capsys, tmp_path, name, expect):
    src = world["root"] / "audio" / name
    out = tmp_path / "out.wav"
    code, err = run(["reconstruct", src, "--tokenizer", world["sat"], "-o", out, "--device", "cpu"], capsys)
    outcome(world, code, err, "reconstruct", name, expect, [out])
    if code == 0:
        assert_finite_audio(out)
        assert len(sf.read(out)[0]) == max(1, round(sf.info(src).frames * corpus.SR / sf.info(src).samplerate)) or name.startswith(("cut", "lying"))
    codes = tmp_path / "codes.npz"
    code, err = run(["encode", src, "--tokenizer", world["sat"], "-o", codes, "--device", "cpu"], capsys)
    outcome(world, code, err, "encode", name, expect, [codes])
    if code == 0:
        decoded = tmp_path / "decoded.wav"
        assert run(["decode", codes, "--tokenizer", world["sat"], "-o", decoded, "--device", "cpu"], capsys)[0] == 0
        assert_finite_audio(decoded)


@pytest.mark.parametrize("name,expect", AUDIO, ids=[n for n, _ in AUDIO])
def test_evaluate_with_the_file_among_the_generated_clips(world, capsys, tmp_path, name, expect):
    generated = tmp_path / "generated"
    generated.mkdir()
    for clip in world["good"].iterdir():
        os.symlink(clip, generated / f"g_{clip.name}")
    os.symlink(world["root"] / "audio" / name, generated / name)
    report = tmp_path / "report.json"
    code, err = run(["evaluate", "--reference", world["good"], "--generated", generated, "--backbone", "mel",
                     "--device", "cpu", "--no-progress", "-o", report], capsys)
    assert code == 0 and "Traceback" not in err, err
    result = json.loads(report.read_text())
    assert all(math.isfinite(v) for v in result["metrics"].values() if isinstance(v, (int, float))), result["metrics"]
    skipped = " ".join(entry["file"] for entry in result["skipped"])
    if expect == "error" and (generated / name).is_file():
        assert name in skipped, f"{name} was not reported as skipped: {result['skipped']}"
    if expect == "ok":
        assert name not in skipped, result["skipped"]


def test_training_reports_every_bad_file_and_trains_on_the_rest(world, tmp_path, capsys):
    from tests.faults.conftest import tokenizer_config_file

    data = tmp_path / "data"
    data.mkdir()
    for clip in world["good"].iterdir():
        os.symlink(clip, data / clip.name)
    bad = [n for n, e in AUDIO if e == "error" and (world["root"] / "audio" / n).is_file()]
    for name in bad:
        os.symlink(world["root"] / "audio" / name, data / name)
    config = tokenizer_config_file(tmp_path, max_steps=10, checkpoint_every=0)  # enough to reach every file
    code, err = run(["train-tokenizer", "--config", config, "--data", data, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    reported = " ".join(json.loads((tmp_path / "run" / "summary.json").read_text())["undecodable"])
    # files the reader refuses are reported by name; nothing poisoned the model
    missed = [n for n in bad if n not in reported]
    assert not missed, f"not reported: {missed}"
    from safetensors.torch import load_file

    assert all(torch.isfinite(v).all() for v in load_file(str(tmp_path / "run" / "model" / "model.safetensors")).values())


# ----------------------------------------------------------------- checkpoints
def checkpoint_cases():
    return [
        "empty.pth", "truncated.pth", "random.pth", "text.pth", "hostile.pth", "hostile_legacy.pth", "wrong_keys.pth",
        "a_list.pth", "nan_release.pth", "truncated.safetensors", "no_config_dir", "bad_json_dir", "wrong_kind_dir",
        "no_weights_dir", "truncated_weights_dir", "nan_sat_dir", "nan_aar_dir", "loop.pth", "missing.pth",
    ]


CHECKPOINTS = checkpoint_cases()


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_every_model_reader_refuses_a_bad_checkpoint(world, capsys, tmp_path, name):
    ckpt = world["root"] / "ckpt" / name
    clip = world["good"] / "clip0.wav"
    runs = {
        "reconstruct": (["reconstruct", clip, "--tokenizer", ckpt, "-o", tmp_path / "r.wav", "--device", "cpu"], [tmp_path / "r.wav"]),
        "decode": (["decode", world["root"] / "good.npz", "--tokenizer", ckpt, "-o", tmp_path / "d.wav", "--device", "cpu"], [tmp_path / "d.wav"]),
        "generate": (["generate", "--model", ckpt, "-o", tmp_path / "gen", "--seed", "0", "--device", "cpu"], [tmp_path / "gen"]),
        "convert-official": (["convert-official", ckpt, "-o", tmp_path / "conv"], [tmp_path / "conv"]),
        "evaluate": (["evaluate", "--reference", world["good"], "--generated", world["good"], "--backbone", "vggish",
                      "--weights", ckpt, "--device", "cpu", "--no-progress", "-o", tmp_path / "e.json"], [tmp_path / "e.json"]),
    }
    for command, (argv, outputs) in runs.items():
        code, err = run(argv, capsys)
        outcome(world, code, err, command, name, "error", outputs)
    assert not (world["root"] / "ckpt" / MARKER).exists(), "a checkpoint ran code"


def test_generate_refuses_nan_weights_in_the_words_of_the_cli(world, capsys, tmp_path):
    code, err = run(["generate", "--model", world["root"] / "ckpt" / "nan_aar_dir", "-o", tmp_path / "g", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, "generate", "nan_aar_dir")
    assert "NaN or infinite values" in err
    code, err = run(["generate", "--model", world["root"] / "ckpt" / "truncated.pth", "-o", tmp_path / "g"], capsys)
    assert_one_line_error(code, err, "generate", "truncated.pth")
    assert "holds no tokenizer" not in err and "not a readable PyTorch checkpoint" in err


def test_generate_never_writes_nan_audio(world, capsys, tmp_path, monkeypatch):
    from aar.transformer import AAR

    real = AAR.generate

    def nan_audio(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        result.audio = result.audio.clone()
        result.audio[..., 7] = float("nan")
        return result

    monkeypatch.setattr(AAR, "generate", nan_audio)
    out = tmp_path / "g"
    code, err = run(["generate", "--model", world["aar"], "-o", out, "--seed", "0", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, "generate", str(world["aar"]))
    assert "NaN or infinite samples" in err and not out.exists()
    monkeypatch.setattr(AAR, "generate", real)
    assert run(["generate", "--model", world["aar"], "-o", out, "--seed", "0", "--device", "cpu"], capsys)[0] == 0
    assert_finite_audio(next(out.glob("*.wav")))


# ----------------------------------------------------------------- code files
CODES = [
    ("good.npz", "ok"), ("empty.npz", "error"), ("truncated.npz", "error"), ("random.npz", "error"),
    ("pickle.npz", "error"), ("npy_named.npz", "error"), ("float_codes.npz", "error"), ("nan_codes.npz", "error"),
    ("out_of_range.npz", "error"), ("negative.npz", "error"), ("object_codes.npz", "error"),
    ("wrong_shape.npz", "error"), ("missing_length.npz", "error"), ("wrong_format.npz", "error"),
    ("bytes_format.npz", "error"), ("scales_mismatch.npz", "error"), ("float_scales.npz", "error"),
    ("length_too_long.npz", "error"), ("negative_windows.npz", "error"), ("string_windows.npz", "error"),
    ("array_length.npz", "error"), ("other_rate.npz", "error"), ("coarse_only.npz", "ok"),
]


def test_the_codes_corpus_is_the_one_built(world):
    assert sorted(world["codes"]) == sorted(CODES)
    assert sorted(n for n, _ in world["checkpoints"]) == sorted(CHECKPOINTS)


@pytest.mark.parametrize("name,expect", CODES, ids=[n for n, _ in CODES])
def test_decode(world, capsys, tmp_path, name, expect):
    out = tmp_path / "out.wav"
    code, err = run(["decode", world["root"] / "codes" / name, "--tokenizer", world["sat"], "-o", out, "--device", "cpu"], capsys)
    outcome(world, code, err, "decode", name, expect, [out])
    if code == 0:
        assert_finite_audio(out)
    assert not (world["root"] / "codes" / MARKER).exists()


@pytest.mark.parametrize("name", ["random.mp3", "id3_then_junk.mp3"])
def test_an_undecodable_mp3_prints_only_the_error_line(world, name):
    from tests.faults.conftest import run_worker

    done = run_worker("none", 0, ["encode", world["root"] / "audio" / name, "--tokenizer", world["sat"],
                                  "-o", world["root"] / "never.npz", "--device", "cpu"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr  # no decoder noise around it
    assert done.stderr.startswith("aar encode: error: ") and name in done.stderr
