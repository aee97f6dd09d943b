"""The tokenizer commands: reconstruct / encode / decode / convert-official, run in-process."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aar import SAT, SATConfig
from aar.audio import load_audio
from aar.tokenizer import linear_schedule
from aar.cli.main import main
from aar.cli.tokenizer_cmds import plan_reconstruct
from tests.conftest import official, sine_mix

PCM_STEP = 1 / 32768  # output wavs are 16-bit


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return SAT(SATConfig.preset("tiny")).save_pretrained(tmp_path_factory.mktemp("tok") / "sat")


@pytest.fixture(scope="module")
def sat(tok_dir) -> SAT:
    return SAT.from_pretrained(tok_dir)


@pytest.fixture(scope="module")
def long_stereo(tmp_path_factory) -> Path:
    """2.5 s of stereo audio at 44.1 kHz: three windows at 24 kHz, the last one partial."""
    path = tmp_path_factory.mktemp("audio") / "long stereo.wav"
    left, right = sine_mix(batch=2, seconds=2.5, sr=44_100)[:, 0].numpy()
    sf.write(path, np.stack([left, 0.5 * right], axis=1), 44_100)
    return path


def write_clip(path: Path, sr: int = 24_000, seconds: float = 0.5) -> Path:
    sf.write(path, sine_mix(batch=1, seconds=seconds, sr=sr)[0, 0].numpy(), sr)
    return path


def read(path: Path) -> torch.Tensor:
    data, sr = sf.read(path, dtype="float32")
    assert sr == 24_000 and data.ndim == 1
    return torch.from_numpy(data)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(capsys, argv, name) -> str:
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert str(name) in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


# ---------------------------------------------------------------- reconstruct
@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_reconstruct_formats(capsys, tmp_path, tok_dir, sat, ext):
    src = write_clip(tmp_path / f"clip.{ext}", sr=32_000)
    code, out, _ = run(capsys, "reconstruct", src, "--tokenizer", tok_dir, "--device", "cpu")
    assert code == 0
    dst = tmp_path / "clip_recon.wav"
    assert str(dst) in out
    wav = load_audio(src)
    got = read(dst)
    assert got.shape == (wav.shape[-1],)
    expected = sat.reconstruct(wav[None])[0, 0].clamp(-1, 1)
    assert (got - expected).abs().max() <= 2 * PCM_STEP


def test_reconstruct_dtype_runs_the_codec_in_that_precision(capsys, tmp_path, tok_dir, sat, monkeypatch):
    """Where the CPU has bfloat16 units (pretended here, whatever this machine is)."""
    import dataclasses

    from aar.transformer import fast_linear

    native = dataclasses.replace(fast_linear.cpu_support(), native_bf16=True)
    monkeypatch.setattr("aar.transformer.precision.cpu_support", lambda: native)
    src = write_clip(tmp_path / "clip.wav", seconds=1.0)
    code, _, _ = run(capsys, "reconstruct", src, "--tokenizer", tok_dir, "--device", "cpu", "--dtype", "bfloat16",
                     "-o", tmp_path / "bf16.wav")
    assert code == 0
    got, wav = read(tmp_path / "bf16.wav"), load_audio(src)[None]
    low = SAT.from_pretrained(tok_dir, inference_dtype="bfloat16")
    assert (got - low.reconstruct(wav)[0, 0].clamp(-1, 1)).abs().max() <= 2 * PCM_STEP
    assert (got - sat.reconstruct(wav)[0, 0].clamp(-1, 1)).abs().max() > 2 * PCM_STEP  # not the float32 codec


def test_reconstruct_dtype_without_the_units_runs_float32_and_says_so(capsys, tmp_path, tok_dir, sat, monkeypatch):
    import dataclasses

    from aar.transformer import fast_linear

    emulated = dataclasses.replace(fast_linear.cpu_support(), capability="AVX2", native_bf16=False, native_fp16=False)
    monkeypatch.setattr("aar.transformer.precision.cpu_support", lambda: emulated)
    src = write_clip(tmp_path / "clip.wav", seconds=1.0)
    for dtype in ("bfloat16", "float16"):
        code, _, err = run(capsys, "reconstruct", src, "--tokenizer", tok_dir, "--device", "cpu", "--dtype", dtype,
                           "-o", tmp_path / f"{dtype}.wav")
        assert code == 0
        assert f"precision: float32 on CPU (AVX2), not {dtype}: this CPU has no" in err
        got, wav = read(tmp_path / f"{dtype}.wav"), load_audio(src)[None]
        assert (got - sat.reconstruct(wav)[0, 0].clamp(-1, 1)).abs().max() <= 2 * PCM_STEP  # the float32 codec


@pytest.fixture(scope="module")
def long_recon(tmp_path_factory, tok_dir, long_stereo) -> Path:
    """``aar reconstruct`` of the 2.5 s stereo clip, two windows per batch."""
    dst = tmp_path_factory.mktemp("recon") / "long.wav"
    assert main(["reconstruct", str(long_stereo), "--tokenizer", str(tok_dir), "-o", str(dst), "--batch-size", "2"]) == 0
    return dst


def test_reconstruct_long_stereo_full_length(tok_dir, sat, long_stereo, long_recon):
    got = read(long_recon)
    assert got.shape == (60_000,)  # 2.5 s at 24 kHz, mono
    expected = sat.reconstruct(load_audio(long_stereo)[None])[0, 0].clamp(-1, 1)
    assert (got - expected).abs().max() <= 2 * PCM_STEP


def test_reconstruct_many_files_into_folder_and_bad_one(capsys, tmp_path, tok_dir):
    good = [write_clip(tmp_path / "one.wav"), write_clip(tmp_path / "two.ogg", sr=16_000, seconds=1.3)]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    out_dir = tmp_path / "recon"
    code, out, err = run(capsys, "reconstruct", *good, bad, "--tokenizer", tok_dir, "-o", out_dir)
    assert code == 1  # the others are still written
    assert str(bad) in err and "Traceback" not in err
    assert "2 of 3" in out
    assert read(out_dir / "one_recon.wav").shape == (12_000,)
    assert read(out_dir / "two_recon.wav").shape == (31_200,)
    assert not (out_dir / "broken_recon.wav").exists()


def test_plan_outputs(tmp_path):
    (tmp_path / "sub").mkdir()
    a = write_clip(tmp_path / "a.wav")
    write_clip(tmp_path / "sub" / "b.mp3")
    assert [j.dst for j in plan_reconstruct([str(a)], None)] == [tmp_path / "a_recon.wav"]
    assert [j.dst for j in plan_reconstruct([str(a)], str(tmp_path / "x.flac"))] == [tmp_path / "x.flac"]
    out = tmp_path / "out"
    jobs = plan_reconstruct([str(tmp_path)], str(out))  # a folder keeps its sub-folders
    assert sorted(j.dst for j in jobs) == [out / "a_recon.wav", out / "sub" / "b_recon.wav"]
    (tmp_path / "other").mkdir()
    clash = write_clip(tmp_path / "other" / "a.flac")
    with pytest.raises(Exception, match="both be written"):
        plan_reconstruct([str(a), str(clash)], str(out))
    with pytest.raises(Exception, match="needs -o"):
        plan_reconstruct([str(tmp_path)], None)
    with pytest.raises(Exception, match="unsupported output format"):
        plan_reconstruct([str(a)], str(tmp_path / "a.txt"))


# ---------------------------------------------------------------- encode / decode
def test_encode_decode_round_trip_equals_reconstruct(capsys, tmp_path, tok_dir, sat, long_stereo, long_recon):
    npz, dec = tmp_path / "codes.npz", tmp_path / "dec.wav"
    assert run(capsys, "encode", long_stereo, "--tokenizer", tok_dir, "-o", npz)[0] == 0
    data = np.load(npz)
    assert int(data["num_windows"]) == 3 and int(data["length"]) == 60_000
    assert int(data["sample_rate"]) == 24_000 and data["scales"].tolist() == sat.scales
    wav = load_audio(long_stereo)[None]
    codes = sat.encode_long(wav)
    for k, size in enumerate(sat.scales):
        assert data[f"codes_{k}"].shape == (3, size)
        assert np.array_equal(data[f"codes_{k}"], codes[k][0].numpy())
    assert run(capsys, "decode", npz, "--tokenizer", tok_dir, "-o", dec)[0] == 0
    assert read(dec).shape == (60_000,)
    assert (read(dec) - read(long_recon)).abs().max() <= PCM_STEP


def test_scales_prefix(capsys, tmp_path, tok_dir, sat):
    src = write_clip(tmp_path / "clip.wav", seconds=1.0)
    npz = tmp_path / "c.npz"
    assert run(capsys, "encode", src, "--tokenizer", tok_dir, "-o", npz)[0] == 0
    k = 4
    assert run(capsys, "decode", npz, "--tokenizer", tok_dir, "--scales", k, "-o", tmp_path / "d4.wav")[0] == 0
    assert run(capsys, "reconstruct", src, "--tokenizer", tok_dir, "--scales", k, "-o", tmp_path / "r4.wav")[0] == 0
    codes = sat.encode_long(load_audio(src)[None])
    coarse = sat.decode_long(codes[:k], 24_000)[0, 0].clamp(-1, 1)
    full = sat.decode_long(codes, 24_000)[0, 0].clamp(-1, 1)
    d4, r4 = read(tmp_path / "d4.wav"), read(tmp_path / "r4.wav")
    assert (d4 - coarse).abs().max() <= PCM_STEP
    assert (d4 - r4).abs().max() <= PCM_STEP
    # A random tiny decoder is dominated by its biases, so the scales change the output only
    # slightly; still clearly more than the 16-bit rounding.
    assert (d4 - full).abs().max() > 4 * PCM_STEP
    for bad in (0, len(sat.scales) + 1):
        argv = ["decode", npz, "--tokenizer", tok_dir, "--scales", bad, "-o", tmp_path / "x.wav"]
        assert_user_error(capsys, argv, "--scales")


def test_decode_checks_consistency(capsys, tmp_path, tok_dir):
    src = write_clip(tmp_path / "clip.wav")
    npz = tmp_path / "c.npz"
    assert run(capsys, "encode", src, "--tokenizer", tok_dir, "-o", npz)[0] == 0
    other_cfg = SATConfig.from_dict({**SATConfig.preset("tiny").to_dict(), "scales": [1, 5, 75]})
    other_dir = SAT(other_cfg).save_pretrained(tmp_path / "other")
    err = assert_user_error(capsys, ["decode", npz, "--tokenizer", other_dir, "-o", tmp_path / "x.wav"], npz)
    assert "scales" in err
    assert_user_error(capsys, ["decode", src, "--tokenizer", tok_dir, "-o", tmp_path / "x.wav"], src)
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in np.load(npz).items() if k != "length"})
    err = assert_user_error(capsys, ["decode", partial, "--tokenizer", tok_dir, "-o", tmp_path / "x.wav"], partial)
    assert "length" in err


# ---------------------------------------------------------------- convert-official
def test_convert_official_sat_gives_identical_codes(capsys, tmp_path):
    ckpt = official("sat_tiny", "ckpt.pt")
    io = torch.load(official("sat_tiny", "io.pt"), weights_only=True)
    out = tmp_path / "sat_tiny"
    code, stdout, _ = run(capsys, "convert-official", ckpt, "-o", out)
    assert code == 0 and str(out) in stdout
    converted, release = SAT.from_pretrained(out), SAT.from_pretrained(ckpt)
    assert converted.config == release.config
    for ours, theirs, stored in zip(converted.encode(io["wav"]), release.encode(io["wav"]), io["codes"]):
        assert torch.equal(ours, theirs) and torch.equal(ours, stored)


def test_convert_official_sat_scales(capsys, tmp_path):
    ckpt = official("sat_tiny", "ckpt.pt")
    schedule = linear_schedule(16, 75)
    out = tmp_path / "linear"
    assert run(capsys, "convert-official", ckpt, "-o", out, "--scales", ",".join(map(str, schedule)))[0] == 0
    assert SAT.from_pretrained(out).scales == schedule
    err = assert_user_error(capsys, ["convert-official", ckpt, "-o", tmp_path / "x", "--scales", "1", "5", "75"], ckpt)
    assert "16 codebooks" in err


def test_convert_official_aar_without_transformer_module(capsys, tmp_path, monkeypatch):
    ckpt = official("aar_tiny", "ckpt.pt")
    monkeypatch.setitem(sys.modules, "aar.transformer.official", None)  # makes the import fail
    err = assert_user_error(capsys, ["convert-official", ckpt, "-o", tmp_path / "aar"], ckpt)
    assert "aar.transformer" in err


def test_convert_official_aar(capsys, tmp_path):
    ckpt, sat_ckpt = official("aar_tiny", "ckpt.pt"), official("sat_tiny", "ckpt.pt")
    if importlib.util.find_spec("aar.transformer.official") is None:
        pytest.skip("the aar.transformer module is not installed")
    err = assert_user_error(capsys, ["convert-official", ckpt, "-o", tmp_path / "aar"], ckpt)
    assert "--tokenizer" in err
    assert run(capsys, "convert-official", ckpt, "--tokenizer", sat_ckpt, "-o", tmp_path / "aar")[0] == 0
    assert json.loads((tmp_path / "aar" / "config.json").read_text())["kind"] == "aar"


def test_convert_official_rejects_other_files(capsys, tmp_path, tok_dir):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    assert_user_error(capsys, ["convert-official", text, "-o", tmp_path / "o"], text)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    assert_user_error(capsys, ["convert-official", foreign, "-o", tmp_path / "o"], foreign)
    assert_user_error(capsys, ["convert-official", tok_dir, "-o", tmp_path / "o"], tok_dir)
    assert_user_error(capsys, ["convert-official", tmp_path / "missing.pth", "-o", tmp_path / "o"], "missing.pth")


# ---------------------------------------------------------------- errors
def _bad_input(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.touch()
    elif kind == "corrupt":
        path.write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt " + bytes(range(256)))  # a WAV header, then garbage
    elif kind == "text":
        path = tmp_path / "readme.txt"
        path.write_text("hello, this is not audio\n")
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "corrupt", "text"])
@pytest.mark.parametrize("command", ["reconstruct", "encode"])
def test_bad_input_one_line_error(capsys, tmp_path, tok_dir, kind, command):
    path = _bad_input(tmp_path, kind)
    out = tmp_path / ("codes.npz" if command == "encode" else "out.wav")
    assert_user_error(capsys, [command, path, "--tokenizer", tok_dir, "-o", out], path)
    assert not out.exists()


def test_bad_tokenizer_one_line_error(capsys, tmp_path):
    src = write_clip(tmp_path / "clip.wav")
    text = tmp_path / "tokenizer.txt"
    text.write_text("just text\n")
    for tok in (official("aar_tiny", "ckpt.pt"), text, tmp_path / "nowhere" / "sat", tmp_path):
        assert_user_error(capsys, ["reconstruct", src, "--tokenizer", tok], tok)
    assert_user_error(capsys, ["encode", src, "--tokenizer", text, "-o", tmp_path / "c.npz"], text)
    assert not (tmp_path / "clip_recon.wav").exists()


def test_bad_device(capsys, tmp_path, tok_dir):
    src = write_clip(tmp_path / "clip.wav")
    assert_user_error(capsys, ["reconstruct", src, "--tokenizer", tok_dir, "--device", "tpu9"], "--device")


@pytest.mark.parametrize("command", ["reconstruct", "encode", "decode", "convert-official"])
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"aar {command}" in text


def test_console_entry_point(tmp_path, tok_dir):
    """The installed ``aar`` script (or ``python -m aar``): a user error exits 1 with one line."""
    script = Path(sys.executable).with_name("aar")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "aar"]
    missing = tmp_path / "missing.wav"
    proc = subprocess.run(
        cmd + ["reconstruct", str(missing), "--tokenizer", str(tok_dir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"aar reconstruct: error: {missing}: no such file"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(capsys, tmp_path, tok_dir, long_stereo):
    codes = {}
    for device in ("cpu", "cuda"):
        npz = tmp_path / f"{device}.npz"
        assert run(capsys, "encode", long_stereo, "--tokenizer", tok_dir, "-o", npz, "--device", device)[0] == 0
        assert run(capsys, "decode", npz, "--tokenizer", tok_dir, "-o", tmp_path / f"{device}.wav", "--device", device)[0] == 0
        data = np.load(npz)
        codes[device] = np.concatenate([data[f"codes_{k}"].ravel() for k in range(len(data["scales"]))])
    assert (codes["cpu"] == codes["cuda"]).mean() >= 0.95  # TF32 convolutions may flip near-ties
    assert (read(tmp_path / "cpu.wav") - read(tmp_path / "cuda.wav")).abs().max() <= 1e-2
